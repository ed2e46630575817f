package mlx

/*
#include <stdlib.h>
#include "shim_dist.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"
)

// Environment variables read by MLX's distributed backends (see
// docs/distributed.md). genkit launch sets them for every rank.
const (
	// EnvRank is every backend's 0-based rank of this process.
	EnvRank = "MLX_RANK"
	// EnvHostfile is the ring backend's JSON hostfile: one list of
	// "ip:port" strings per rank, in rank order.
	EnvHostfile = "MLX_HOSTFILE"
	// EnvRingVerbose, when set, makes the ring backend log its connections.
	EnvRingVerbose = "MLX_RING_VERBOSE"
	// EnvWorldSize is the NCCL backend's number of processes.
	EnvWorldSize = "MLX_WORLD_SIZE"
	// EnvNCCLHostIP and EnvNCCLPort are where the NCCL backend's rank 0
	// listens to hand out NCCL's unique id.
	EnvNCCLHostIP = "NCCL_HOST_IP"
	EnvNCCLPort   = "NCCL_PORT"
)

// Distributed backend names accepted by InitGroup.
const (
	BackendAny   = "any"
	BackendRing  = "ring"
	BackendNCCL  = "nccl"
	BackendMPI   = "mpi"
	BackendJACCL = "jaccl"
)

// ErrInitTimeout is wrapped by InitGroup's error when the peers did not all
// connect in time. The process should exit: MLX is left waiting for them on
// a thread of its own and the group cannot be used.
var ErrInitTimeout = errors.New("peers did not connect in time")

// Group is a group of processes that run MLX together (one per rank) and
// exchange arrays with collectives such as AllSum. It lives as long as the
// process.
type Group struct {
	c       C.gk_group
	rank    int
	size    int
	backend string
}

// Rank is this process's 0-based rank in the group.
func (g *Group) Rank() int {
	if g == nil {
		return 0
	}
	return g.rank
}

// Size is the number of processes in the group (1 when not distributed).
func (g *Group) Size() int {
	if g == nil {
		return 1
	}
	return g.size
}

// Backend is the backend name InitGroup was asked for.
func (g *Group) Backend() string {
	if g == nil {
		return ""
	}
	return g.backend
}

// String is e.g. "rank 1 of 2 (ring)".
func (g *Group) String() string {
	return fmt.Sprintf("rank %d of %d (%s)", g.Rank(), g.Size(), g.Backend())
}

// DistributedAvailable reports whether the linked MLX library has the backend
// (BackendRing, BackendNCCL, ...; BackendAny is true when one is).
func DistributedAvailable(backend string) (bool, error) {
	cb := C.CString(backend)
	defer C.free(unsafe.Pointer(cb))
	var ok C.int
	if err := check("distributed_is_available", C.gk_dist_is_available(cb, &ok)); err != nil {
		return false, err
	}
	return ok != 0, nil
}

// InitGroup starts MLX's distributed backend (BackendRing, BackendNCCL,
// BackendAny, ...) from the environment (EnvRank, EnvHostfile, ...) and
// returns the group of all ranks. Not strict, a backend that cannot start
// gives a group of size 1 (one process); strict, it is an error.
//
// MLX blocks until every peer has connected, with no limit of its own, so
// InitGroup waits at most until ctx is done: then it returns an error that
// wraps ErrInitTimeout (or ctx's error) and the process should exit. It runs
// on a thread of its own, not the MLX thread, which stays free. MLX keeps
// the backends it has started: a second call for the same backend (or for
// BackendAny after one started) returns the same group.
func InitGroup(ctx context.Context, backend string, strict bool) (*Group, error) {
	if backend == "" {
		backend = BackendAny
	}
	type result struct {
		c   C.gk_group
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // MLX's backend may keep per-thread state
		defer runtime.UnlockOSThread()
		cb := C.CString(backend)
		defer C.free(unsafe.Pointer(cb))
		var r result
		r.err = check("distributed_init", C.gk_dist_init(&r.c, cb, boolInt(strict)))
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrInitTimeout
		}
		return nil, fmt.Errorf("mlx distributed init (%s, %s): %w", backend, rankHint(), err)
	}
	if r.err != nil {
		return nil, fmt.Errorf("mlx distributed init (%s, %s): %w", backend, rankHint(), r.err)
	}
	g := &Group{c: r.c, backend: backend}
	var rank, size C.int
	if err := check("group_rank", C.gk_group_rank(r.c, &rank)); err != nil {
		return nil, err
	}
	if err := check("group_size", C.gk_group_size(r.c, &size)); err != nil {
		return nil, err
	}
	g.rank, g.size = int(rank), int(size)
	return g, nil
}

// InitGroupTimeout is InitGroup with a deadline d from now.
func InitGroupTimeout(backend string, strict bool, d time.Duration) (*Group, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return InitGroup(ctx, backend, strict)
}

// rankHint names the rank the environment gives, for error messages.
func rankHint() string {
	r := os.Getenv(EnvRank)
	if r == "" {
		return EnvRank + " unset"
	}
	if _, err := strconv.Atoi(r); err != nil {
		return fmt.Sprintf("%s=%q", EnvRank, r)
	}
	return "rank " + r
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func groupHandle(g *Group) C.gk_group {
	if g == nil {
		return C.gk_group{}
	}
	return g.c
}

// AllSum is the element-wise sum of x over every rank of g (nil: MLX's
// default group, the first one initialised, or a group of one). Every rank must call it with an array of
// the same shape and dtype, in the same order as the other collectives. It is
// lazy like every op: the exchange happens when the result is evaluated.
func AllSum(x *Array, g *Group) (*Array, error) {
	if !x.valid() {
		return nil, errNil("all_sum")
	}
	var out C.gk_array
	if err := check("all_sum", C.gk_dist_all_sum(&out, x.c, groupHandle(g))); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// AllGather concatenates x of every rank of g along axis 0, in rank order
// (a 0-d x gives one element per rank). Same rules as AllSum.
func AllGather(x *Array, g *Group) (*Array, error) {
	if !x.valid() {
		return nil, errNil("all_gather")
	}
	var out C.gk_array
	if err := check("all_gather", C.gk_dist_all_gather(&out, x.c, groupHandle(g))); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// Barrier returns once every rank of g has reached it: an all-sum of a
// scalar 1, evaluated, whose result must be the group's size. It must run on
// the MLX thread.
func Barrier(g *Group) error {
	if g == nil {
		return errors.New("barrier: nil group")
	}
	one, err := Scalar(1, Float32)
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	defer one.Free()
	sum, err := AllSum(one, g)
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	defer sum.Free()
	v, err := sum.Item()
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if int(v) != g.Size() {
		return fmt.Errorf("barrier: %d ranks answered, the group has %d", int(v), g.Size())
	}
	return nil
}

// FreeLoopbackAddrs returns n distinct "127.0.0.1:port" addresses whose ports
// were free a moment ago (the system picked them; another program could
// still take one before the ranks listen).
func FreeLoopbackAddrs(n int) ([]string, error) {
	if n < 1 {
		return nil, fmt.Errorf("free loopback addresses: n = %d, want at least 1", n)
	}
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free loopback addresses: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// RingHostfile is the JSON of a ring-backend hostfile (EnvHostfile) in which
// rank i listens on addrs[i] ("ip:port"), one connection per neighbour.
func RingHostfile(addrs []string) ([]byte, error) {
	rows := make([][]string, len(addrs))
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("ring hostfile: rank %d: %w", i, err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("ring hostfile: rank %d: %q is not an IPv4 address (MLX's ring backend opens IPv4 sockets)", i, host)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("ring hostfile: rank %d: bad port %q", i, port)
		}
		rows[i] = []string{a}
	}
	return json.Marshal(rows)
}

// Environment variables of genkit's own, set by genkit launch for every rank.
const (
	// EnvBackend names the backend a launched rank initialises ("ring",
	// "nccl", ...). Unset, the process is not distributed.
	EnvBackend = "GENKIT_DIST_BACKEND"
	// EnvInitTimeout bounds how long a launched rank waits for its peers
	// (a Go duration such as "90s"; DefaultInitTimeout when unset).
	EnvInitTimeout = "GENKIT_DIST_TIMEOUT"
)

// DefaultInitTimeout is how long InitFromEnv waits for the peers when
// EnvInitTimeout is unset.
const DefaultInitTimeout = 2 * time.Minute

// InitFromEnv joins the group genkit launch (or a scheduler setting the same
// variables) started this process in: the backend EnvBackend names, strict,
// within EnvInitTimeout. When EnvBackend is unset it returns nil and no error:
// the process runs alone.
func InitFromEnv(ctx context.Context) (*Group, error) {
	backend := os.Getenv(EnvBackend)
	if backend == "" {
		return nil, nil
	}
	timeout := DefaultInitTimeout
	if s := os.Getenv(EnvInitTimeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive duration such as 90s", EnvInitTimeout, s)
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return InitGroup(ctx, backend, true)
}

// BroadcastBytes sends data from rank root to every rank of g and returns
// it on each (the others' data is ignored), so rank 0 can hand its requests
// to the ranks that follow it. Every rank must call it at the same point. It
// is two all-sums (the length, then the bytes, zeros on the other ranks) and
// must run on the MLX thread.
func BroadcastBytes(g *Group, root int, data []byte) ([]byte, error) {
	if g == nil {
		return nil, errors.New("broadcast: nil group")
	}
	if root < 0 || root >= g.Size() {
		return nil, fmt.Errorf("broadcast: root %d is not a rank of %v", root, g)
	}
	if len(data) > math.MaxInt32 {
		return nil, fmt.Errorf("broadcast: %d bytes, at most %d", len(data), math.MaxInt32)
	}
	mine := g.Rank() == root
	n := 0
	if mine {
		n = len(data)
	}
	s := NewScope()
	defer s.Close()
	ln := s.Track(FromInt32s([]int32{int32(n)}, 1))
	total := s.Track(AllSum(ln, g))
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	got, err := total.Int32s()
	if err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	n = int(got[0])
	if mine && n != len(data) {
		return nil, fmt.Errorf("broadcast: the ranks summed to a length of %d for %d bytes: another rank broadcast at the same time", n, len(data))
	}
	if n < 0 {
		return nil, fmt.Errorf("broadcast: length %d", n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	buf := make([]byte, n)
	if mine {
		copy(buf, data)
	}
	x := s.Track(FromBytes(buf, Uint8, n))
	sum := s.Track(AllSum(x, g))
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	out, err := readInto[byte](sum, "broadcast", Uint8)
	if err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	return out, nil
}

// AllGatherAxis concatenates x of every rank of g along axis (negative
// counts from the end), in rank order: the logits of a vocabulary-split head
// [B, L, V/N] become [B, L, V] on every rank. Same rules as AllGather.
func AllGatherAxis(x *Array, g *Group, axis int) (*Array, error) {
	if !x.valid() {
		return nil, errNil("all_gather")
	}
	nd := x.Ndim()
	if axis < 0 {
		axis += nd
	}
	if axis < 0 || axis >= nd {
		return nil, &Error{Op: "all_gather", Msg: fmt.Sprintf("axis out of range for shape %v", x.Shape())}
	}
	if axis == 0 {
		return AllGather(x, g)
	}
	s := NewScope()
	defer s.Close()
	front := s.Track(SwapAxes(x, 0, axis))
	all := s.Track(AllGather(front, g))
	out := s.Track(SwapAxes(all, 0, axis))
	if err := s.Err(); err != nil {
		return nil, err
	}
	s.Keep(out)
	return out, nil
}
