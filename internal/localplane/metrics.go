package localplane

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// IsWriteVerb reports whether an apiserver_request_total verb changes
// anything (every verb but GET, LIST, WATCH and CONNECT; dry runs included).
func IsWriteVerb(verb string) bool {
	switch verb {
	case "GET", "LIST", "WATCH", "CONNECT":
		return false
	}
	return true
}

// RequestCounts reads the plane's own apiserver_request_total from its
// /metrics and sums the samples by the key group returns for their labels
// (false skips a sample): how tests count the requests a component made.
func (p *Plane) RequestCounts(ctx context.Context, group func(labels map[string]string) (string, bool)) (map[string]float64, error) {
	client, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return nil, err
	}
	body, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	return SumCounter(string(body), "apiserver_request_total", group)
}

// WriteCounts is RequestCounts of the writing verbs, keyed "VERB resource"
// or "VERB resource/subresource".
func (p *Plane) WriteCounts(ctx context.Context) (map[string]float64, error) {
	return p.RequestCounts(ctx, func(l map[string]string) (string, bool) {
		if !IsWriteVerb(l["verb"]) {
			return "", false
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		return key, true
	})
}

var promLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// SumCounter sums the samples of a Prometheus metric in text format by the
// key group returns (false skips the sample).
func SumCounter(body, metric string, group func(labels map[string]string) (string, bool)) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		labels := map[string]string{}
		end := strings.LastIndex(line, "}")
		value := line[len(metric):]
		if end > 0 {
			for _, m := range promLabel.FindAllStringSubmatch(line[:end], -1) {
				labels[m[1]] = m[2]
			}
			value = line[end+1:]
		}
		key, ok := group(labels)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", line, err)
		}
		out[key] += v
	}
	return out, sc.Err()
}
