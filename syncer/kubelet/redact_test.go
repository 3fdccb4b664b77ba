package kubelet

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
)

// What the kubelet stream helpers log about a failed exec keeps its shape
// but never the host's message, which may quote the tenant's command line.
func TestRedactHostMessagesWithholdsTheHostsMessage(t *testing.T) {
	var lines []string
	log := RedactHostMessages(funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{}))
	hostErr := errors.New("cmd wait: sh -c PASSWORD=hunter2 run: exit status 3")
	log.Error(fmt.Errorf("error executing command in container: %v", fmt.Errorf("%s%w", onTheHost, hostErr)), "Unhandled Error")
	log.WithName("x").WithValues("k", "v").Error(errors.New("dial tcp 127.0.0.1:1: connection refused"), "other")
	log.Info("plain")
	got := strings.Join(lines, "\n")
	if strings.Contains(got, "hunter2") {
		t.Errorf("the host's message was logged: %s", got)
	}
	for _, want := range []string{"error executing command in container: on the host: (the host's message is not logged", "connection refused", "plain"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in %s", want, got)
		}
	}
}
