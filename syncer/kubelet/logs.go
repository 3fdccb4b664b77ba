package kubelet

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// logs relays containerLogs to the host twin's pods/log, chunk by chunk as
// the host sends them (a log is never held whole; a followed log flows as it
// is written). It ends when the host's stream ends or the request does.
func (r *relay) logs(w http.ResponseWriter, req *http.Request, p *target) {
	opts, err := logOptions(req.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	opts.Container = p.container
	r.log.Info("logs", "namespace", p.Namespace, "pod", p.Name, "container", p.container, "follow", opts.Follow)
	body, err := r.host.CoreV1().Pods(p.HostNamespace).GetLogs(p.HostName, opts).Stream(req.Context())
	if err != nil {
		writeHostError(w, err, p)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && req.Context().Err() == nil {
				r.log.Info("host log stream ended with an error", "namespace", p.Namespace, "pod", p.Name, "error", err.Error())
			}
			return
		}
	}
}

// logOptions reads the query the API server sends a kubelet (the
// PodLogOptions of the tenant's request, by their JSON names).
func logOptions(q url.Values) (*corev1.PodLogOptions, error) {
	opts := &corev1.PodLogOptions{}
	for name, dst := range map[string]*bool{"follow": &opts.Follow, "previous": &opts.Previous, "timestamps": &opts.Timestamps} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a boolean", name, v)
			}
			*dst = b
		}
	}
	for name, dst := range map[string]**int64{"sinceSeconds": &opts.SinceSeconds, "tailLines": &opts.TailLines, "limitBytes": &opts.LimitBytes} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%s: %q is not a non-negative integer", name, v)
			}
			*dst = ptr.To(n)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("sinceTime: %q is not an RFC 3339 time", v)
		}
		opts.SinceTime = ptr.To(metav1.NewTime(t))
	}
	if v := q.Get("stream"); v != "" {
		opts.Stream = ptr.To(v)
	}
	return opts, nil
}

// writeHostError passes the host's refusal on with its code and message
// (the container does not exist, the pod has no previous log...), in the
// tenant's names.
func writeHostError(w http.ResponseWriter, err error, p *target) {
	code, msg := http.StatusBadGateway, "on the host: "+err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code != 0 {
		code, msg = int(status.Status().Code), status.Status().Message
	}
	msg = strings.NewReplacer(p.HostName, p.Name, p.HostNamespace, p.Namespace).Replace(msg)
	http.Error(w, msg, code)
}
