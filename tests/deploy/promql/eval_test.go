// Evaluates PromQL expressions with Prometheus' own engine over series loaded in promqltest's
// `load` syntax: tests/deploy/test_chart_metrics.py checks the chart's alert rules with it
// (they fire on what the operator exports, and only then). Built with `go test -c`; input
// and output are JSON files named by PROMQL_IN and PROMQL_OUT.
package promqleval

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
)

type query struct {
	Expr string  `json:"expr"`
	At   float64 `json:"at"` // seconds after the load's start
}

type input struct {
	Load    string  `json:"load"`
	Queries []query `json:"queries"`
}

type sample struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

type result struct {
	Error   string   `json:"error,omitempty"`
	Samples []sample `json:"samples"`
}

func TestEvaluate(t *testing.T) {
	raw, err := os.ReadFile(os.Getenv("PROMQL_IN"))
	if err != nil {
		t.Fatal(err)
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	storage := promqltest.LoadedStorage(t, in.Load)
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	out := make([]result, 0, len(in.Queries))
	for _, q := range in.Queries {
		at := time.Unix(0, 0).UTC().Add(time.Duration(q.At * float64(time.Second)))
		res := result{Samples: []sample{}}
		qry, err := engine.NewInstantQuery(context.Background(), storage, nil, q.Expr, at)
		if err != nil {
			res.Error = err.Error()
			out = append(out, res)
			continue
		}
		r := qry.Exec(context.Background())
		if r.Err != nil {
			res.Error = r.Err.Error()
		} else if vector, err := r.Vector(); err != nil {
			res.Error = err.Error()
		} else {
			for _, s := range vector {
				res.Samples = append(res.Samples, sample{s.Metric.Map(), s.F})
			}
		}
		qry.Close()
		out = append(out, res)
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("PROMQL_OUT"), encoded, 0o644); err != nil {
		t.Fatal(err)
	}
}
