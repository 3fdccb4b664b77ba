package localplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// AgnhostPod is a pod spec running agnhost with args as one hardened
// container (non-root, read-only root, no capabilities, RuntimeDefault
// seccomp), as a restricted namespace demands.
func AgnhostPod(name string, args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: name, Image: AgnhostImage, Args: args,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// Dial asks the `agnhost netexec --http-port=8080` pod at podIP (the host
// reaches real nodes' pods) to fetch /hostname from host:port over HTTP,
// and returns the name that answered: a real packet from that pod.
func Dial(podIP, host string, port int) (string, error) {
	return dialFrom(&http.Client{Timeout: 10 * time.Second}, podIP, host, port)
}

// Dial is Dial asked from the real node the pod runs on, as its kubelet
// would ask it: it works where the nodes enforce NetworkPolicies too.
func (p *Plane) Dial(podIP, host string, port int) (string, error) {
	dial, err := p.DialContext(p.podNode(podIP))
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	return dialFrom(c, podIP, host, port)
}

func dialFrom(c *http.Client, podIP, host string, port int) (string, error) {
	url := fmt.Sprintf("http://%s:8080/dial?request=hostname&protocol=http&host=%s&port=%d&tries=1", podIP, host, port)
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	var out struct {
		Responses []string `json:"responses"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Responses) != 1 {
		return "", fmt.Errorf("%s could not reach %s:%d: %s", podIP, host, port, body)
	}
	return out.Responses[0], nil
}
