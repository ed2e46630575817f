package sampling

import (
	"reflect"
	"strings"
)

// jsonFieldNames lists the JSON names of GenerationConfig's fields.
func jsonFieldNames() []string {
	t := reflect.TypeOf(GenerationConfig{})
	var out []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		if name, _, _ := strings.Cut(tag, ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
