package tui

import (
	"context"
	"fmt"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/steering"
)

// Sweeps over any control. w sweeps alpha (the steered lanes decode at once
// at steering.SweepLanes' multiples). W sweeps the selected control
// instead: the layer, the preset, the mode, a sampling field...; each
// steered lane is then its own run (a base and a steered lane, as a normal
// run with that value would decode), one after the other, at the values
// steering.SweepLayers and steering.SweepSteps give (the rule's one home).
// The lanes show the base at the current settings and one steered lane per
// value, titled by it.

// sweepVariants are the settings of the runs of a sweep over control c
// from settings s (a model of layers layers), each lane's label and the
// index of the variant at the current value.
func sweepVariants(s Settings, c *control, layers int) (vs []Settings, labels []string, cur int) {
	s.Sweep = false
	if c.name == "layer" {
		l := layers / 2
		if s.Steering.Layer != nil {
			l = *s.Steering.Layer
		} else if al, ok := s.Steering.AutoLayer(layers); ok {
			l = al
		}
		for _, v := range steering.SweepLayers(l, layers) {
			x := s
			x.Steering.Layer = &v
			if v == l {
				cur = len(vs)
			}
			vs, labels = append(vs, x), append(labels, fmt.Sprintf("layer %d", v))
		}
		return vs, labels, cur
	}
	seen := map[string]int{} // label: index
	for _, k := range steering.SweepSteps {
		x := s
		dir := 1
		if k < 0 {
			dir = -1
		}
		for range k * dir {
			c.step(&x, dir)
		}
		label := c.name + " " + c.value(&x)
		i, ok := seen[label]
		if !ok {
			i = len(vs)
			seen[label] = i
			vs, labels = append(vs, x), append(labels, label)
		}
		if k == 0 {
			cur = i
		}
	}
	return vs, labels, cur
}

// controlNamed is the control of that name (nil: none).
func (md *Model) controlNamed(name string) *control {
	for i := range md.controls.list {
		if md.controls.list[i].name == name {
			return &md.controls.list[i]
		}
	}
	return nil
}

// startRunner starts the run the settings describe: a sweep over a control
// other than alpha runs its variants, anything else one run.
func (md *Model) startRunner() int {
	if md.settings.Sweep && md.compare.over != "" {
		if c := md.controlNamed(md.compare.over); c != nil {
			vs, labels, cur := sweepVariants(md.settings, c, md.m.NumLayers())
			return md.runner.StartSweep(vs, labels, cur)
		}
	}
	return md.runner.Start(md.settings)
}

// sweepSelected is W: sweep the selected control (alpha: the batched alpha
// sweep), or stop sweeping it.
func (md *Model) sweepSelected() tea.Cmd {
	c := md.controls.Selected()
	if c == nil {
		return nil
	}
	name := c.name
	if name == "alpha" {
		name = ""
	}
	if md.settings.Sweep && md.compare.over == name {
		md.settings.Sweep = false
		md.status = "sweep off"
	} else {
		md.settings.Sweep, md.compare.over = true, name
		md.status = "sweeping " + c.name + " (W again stops)"
		if !c.isActive(&md.settings) {
			md.status += "; it has no effect while " + c.why + ": the lanes will agree"
		}
	}
	return md.changed()
}

// StartSweep begins a sweep: one run per variant (the one at cur first, for
// the base lane), merged into one snapshot whose steered lanes are the
// variants' in order, titled by labels; it returns the run's id. It
// cancels the run in flight, as Start does.
func (r *Runner) StartSweep(vs []Settings, labels []string, cur int) int {
	return r.launch(func(ctx context.Context, id int) { r.sweep(ctx, id, vs, labels, cur) })
}

// sweep runs the variants in turn through run (the one steered run),
// merging their snapshots.
func (r *Runner) sweep(ctx context.Context, id int, vs []Settings, labels []string, cur int) {
	var mu sync.Mutex
	all := SnapshotMsg{RunID: id, Lanes: make([]Lane, len(vs)+1), Labels: labels}
	out := func() SnapshotMsg { s := all; s.Lanes = append([]Lane(nil), all.Lanes...); return s }
	r.send(out()) // the titles at once
	order := []int{cur}
	for k := range vs {
		if k != cur {
			order = append(order, k)
		}
	}
	var steps int
	var elapsed time.Duration
	for _, k := range order {
		var last SnapshotMsg
		sub := &Runner{m: r.m, lead: r.lead, send: func(msg tea.Msg) {
			m, ok := msg.(SnapshotMsg)
			if !ok {
				r.send(msg) // progress
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if k == cur && len(m.Lanes) > 0 {
				all.Lanes[0], all.KL = m.Lanes[0], m.KL
				all.Layer, all.Separated, all.Alpha, all.Seed = m.Layer, m.Separated, m.Alpha, m.Seed
			}
			if len(m.Lanes) > 1 {
				all.Lanes[k+1] = m.Lanes[1]
			}
			all.Steps, all.Elapsed = steps+m.Steps, elapsed+m.Elapsed
			if m.Done {
				last = m
				return
			}
			r.send(out())
		}}
		sub.run(ctx, id, vs[k])
		mu.Lock()
		steps, elapsed = steps+last.Steps, elapsed+last.Elapsed
		failed := last.Err != nil || ctx.Err() != nil
		if failed || k == order[len(order)-1] {
			all.Done, all.Err, all.Finished = true, last.Err, last.Finished
			if ctx.Err() != nil {
				all.Finished = "cancelled"
			}
			s := out()
			mu.Unlock()
			r.send(s)
			return
		}
		mu.Unlock()
	}
}
