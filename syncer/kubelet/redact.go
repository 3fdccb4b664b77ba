package kubelet

import (
	"errors"
	"strings"

	"github.com/go-logr/logr"
)

// onTheHost starts the part of an exec or attach error that the host said.
// The tenant sees it whole (it is their own command's failure), but the
// kubelet stream helpers also log the error they answer with through klog,
// and the host's message may quote the command line.
const onTheHost = "on the host: "

// RedactHostMessages wraps the logger klog writes to: an error carrying a
// host's exec or attach message is logged up to onTheHost, with the
// message itself withheld.
func RedactHostMessages(l logr.Logger) logr.Logger {
	sink := l.GetSink()
	if d, ok := sink.(logr.CallDepthLogSink); ok {
		sink = d.WithCallDepth(1) // this wrapper's own frame
	}
	return logr.New(redactingSink{sink})
}

type redactingSink struct{ logr.LogSink }

func (s redactingSink) Info(level int, msg string, kv ...any) {
	s.LogSink.Info(level, msg, kv...)
}

func (s redactingSink) Error(err error, msg string, kv ...any) {
	if err != nil {
		if before, _, found := strings.Cut(err.Error(), onTheHost); found {
			err = errors.New(before + onTheHost + "(the host's message is not logged: it may quote the command line)")
		}
	}
	s.LogSink.Error(err, msg, kv...)
}

func (s redactingSink) WithValues(kv ...any) logr.LogSink {
	return redactingSink{s.LogSink.WithValues(kv...)}
}

func (s redactingSink) WithName(name string) logr.LogSink {
	return redactingSink{s.LogSink.WithName(name)}
}

// WithCallDepth keeps the caller the log line names right.
func (s redactingSink) WithCallDepth(depth int) logr.LogSink {
	if d, ok := s.LogSink.(logr.CallDepthLogSink); ok {
		return redactingSink{d.WithCallDepth(depth)}
	}
	return s
}
