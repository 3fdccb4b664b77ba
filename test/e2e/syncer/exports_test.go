package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The reconciler's init manifests are applied inside the virtual cluster,
// and applied again when they change.
func TestInitManifestsAreAppliedAndReapplied(t *testing.T) {
	ctx := setup(t)
	manifests := func(group string) string {
		return `apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: warren-access}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: ` + group + `, apiGroup: rbac.authorization.k8s.io}]
`
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: clusterName + "-init-manifests", Namespace: hostNamespace},
		Data: map[string]string{"access.yaml": manifests("admins")}}
	// A rerun (-count) finds the ConfigMap of the last run: start it over.
	if err := w.hostC.Create(ctx, cm); apierrors.IsAlreadyExists(err) {
		live := &corev1.ConfigMap{}
		if err := w.hostC.Get(ctx, client.ObjectKeyFromObject(cm), live); err != nil {
			t.Fatal(err)
		}
		live.Data = cm.Data
		if err := w.hostC.Update(ctx, live); err != nil {
			t.Fatal(err)
		}
		cm = live
	} else if err != nil {
		t.Fatal(err)
	}
	subject := func() string {
		b := &rbacv1.ClusterRoleBinding{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Name: "warren-access"}, b); err != nil || len(b.Subjects) == 0 {
			return fmt.Sprint(err)
		}
		return b.Subjects[0].Name
	}
	testkit.Eventually(t, 30*time.Second, "the binding applied", func() (bool, string) {
		err := w.virtualC.Get(ctx, client.ObjectKey{Name: "team-a"}, &corev1.Namespace{})
		return err == nil && subject() == "admins", subject()
	})
	cm.Data["access.yaml"] = manifests("operators")
	if err := w.hostC.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the changed binding re-applied", func() (bool, string) {
		return subject() == "operators", subject()
	})
}

// Once the virtual API answers, its kubeconfig is exported to the host
// Secret <cluster>-kubeconfig, pointing at the in-host Service.
func TestTheKubeconfigIsExported(t *testing.T) {
	ctx := setup(t)
	s := &corev1.Secret{}
	testkit.Eventually(t, 90*time.Second, "the kubeconfig Secret", func() (bool, string) {
		err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: clusterName + "-kubeconfig"}, s)
		return err == nil, fmt.Sprint(err)
	})
	cfg, err := clientcmd.Load(s.Data["config"])
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if cluster.Server != "https://"+clusterName+"."+hostNamespace+".svc:443" {
		t.Errorf("server %s", cluster.Server)
	}
	if len(s.Data["ca.crt"]) == 0 || !strings.Contains(string(s.Data["ca.crt"]), "BEGIN CERTIFICATE") {
		t.Error("ca.crt missing")
	}
	// The credentials work: point them at the virtual API's real address.
	cluster.Server = w.virtual.Config.Host
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &corev1.NamespaceList{}); err != nil {
		t.Errorf("the exported kubeconfig does not work: %v", err)
	}
}
