package localplane

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// With Options.NetworkPolicies each real node enforces NetworkPolicies as a
// host would: kube-router's network-policy controller runs alone on it (no
// routing, no service proxy: the bridge CNI and kube-proxy stay), inside
// the node's network namespace, so its iptables chains and ipsets live in
// the namespace and go with it. kube-router is a tool of the test host only
// (built by test/tools), never part of warren's images.
const policyController = "kube-router"

// policyControllerUser is the identity the policy controllers use; they
// only read (policyControllerRole).
const policyControllerUser = "system:localplane:kube-router"

// policyControllerRole lets kube-router watch what its informers list.
func policyControllerRole() *rbacv1.ClusterRole {
	read := []string{"get", "list", "watch"}
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "localplane:kube-router"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes", "services", "endpoints"}, Verbs: read},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		},
	}
}

// grantPolicyControllers gives policyControllerUser its read-only role.
func grantPolicyControllers(ctx context.Context, client kubernetes.Interface) error {
	role := policyControllerRole()
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("the policy controllers' role: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: policyControllerUser}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("the policy controllers' role binding: %w", err)
	}
	return nil
}

// startPolicyController starts kube-router's network-policy controller on
// the node (whose Node object it reads, so the node must be registered)
// and waits until its chains are in the node's iptables.
func (n *realNode) startPolicyController(ctx context.Context, p *Plane) error {
	proc, err := n.run(n.tools, policyController,
		"--kubeconfig="+filepath.Join(n.dir, policyController+".kubeconfig"), "--hostname-override="+n.name,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--service-cluster-ip-range="+p.ServiceCIDR, "--service-node-port-range="+p.nodePortRange,
		"--health-port=0", "--metrics-port=0", "--v=1")
	if err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, proc, "did not set up its iptables chains", func(context.Context) (bool, error) {
		return n.inside("iptables", "-w", "-n", "-L", "KUBE-ROUTER-FORWARD") == nil, nil
	})
}

// hostPolicyState is what of kube-router's is in the host's own network
// namespace (never anything: it runs only in the nodes' namespaces): its
// iptables chains and its ipsets.
func hostPolicyState() []string {
	var out []string
	if rules, err := exec.Command("iptables-save").Output(); err == nil {
		for _, line := range strings.Split(string(rules), "\n") {
			if strings.HasPrefix(line, ":KUBE-ROUTER-") || strings.HasPrefix(line, ":KUBE-NWPLCY-") || strings.HasPrefix(line, ":KUBE-POD-FW-") {
				out = append(out, "iptables chain "+strings.Fields(line)[0][1:])
			}
		}
	}
	if sets, err := exec.Command("ipset", "list", "-n").Output(); err == nil {
		for _, name := range strings.Fields(string(sets)) {
			bare := strings.TrimPrefix(name, "inet6:")
			if strings.HasPrefix(bare, "KUBE-SRC-") || strings.HasPrefix(bare, "KUBE-DST-") {
				out = append(out, "ipset "+name)
			}
		}
	}
	return out
}
