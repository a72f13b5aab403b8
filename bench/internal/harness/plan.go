package harness

import (
	"fmt"
	"slices"
	"strings"
)

// quickMultiNode are the only workloads --quick runs on clusters of more
// than one node, unless asked for others by name.
var quickMultiNode = []string{"put-256", "leader-kill"}

// Plan returns the cases to run, ordered by cluster size and then as
// Workloads lists them: each workload named in only (all if only is
// empty) on each size in nodes that it supports. With quick and no only,
// clusters of more than one node run only put-256 and leader-kill.
func Plan(only []string, nodes []int, quick bool) ([]Case, error) {
	for _, name := range only {
		if _, ok := WorkloadByName(name); !ok {
			return nil, fmt.Errorf("harness: unknown workload %q (have %s)", name, strings.Join(workloadNames(), ", "))
		}
	}
	for _, n := range nodes {
		if n < 1 {
			return nil, fmt.Errorf("harness: cluster of %d nodes", n)
		}
	}
	sizes := slices.Clone(nodes)
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	var cases []Case
	for _, n := range sizes {
		for _, w := range Workloads() {
			switch {
			case !slices.Contains(w.Nodes, n):
			case len(only) > 0 && !slices.Contains(only, w.Name):
			case len(only) == 0 && quick && n > 1 && !slices.Contains(quickMultiNode, w.Name):
			default:
				cases = append(cases, Case{Workload: w, Nodes: n})
			}
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("harness: no workload runs on %v node(s)", nodes)
	}
	return cases, nil
}

func workloadNames() []string {
	var names []string
	for _, w := range Workloads() {
		names = append(names, w.Name)
	}
	return names
}
