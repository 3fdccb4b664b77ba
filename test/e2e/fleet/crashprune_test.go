package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/testkit"
)

// killWhenPKISecretDeleted watches cluster's PKI Secret and kills the
// reconciler (SIGKILL: no status write) the moment it is deleted, then
// checks that the Fleet still records the cluster in its inventory: the
// kill came after the prune began and before its result was written.
func (h *host) killWhenPKISecretDeleted(rec *reconcilerProcess, fleet client.ObjectKey, cluster string, during func()) {
	h.t.Helper()
	ctx := context.Background()
	w, err := h.kube.CoreV1().Secrets("vc-"+cluster).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + cluster + "-pki"})
	if err != nil {
		h.t.Fatal(err)
	}
	defer w.Stop()
	during()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				h.t.Fatal("the watch on the PKI Secret ended")
			}
			if ev.Type != watch.Deleted {
				continue
			}
			rec.Kill()
			f := h.fleet(fleet)
			if len(h.inventoryOf(f, cluster)) == 0 {
				h.t.Fatalf("the kill came after the prune was recorded; the story proves nothing: %s", fleetState(f))
			}
			return
		case <-deadline:
			h.t.Fatalf("the PKI Secret of %s was not deleted within 2m", cluster)
		}
	}
}

// inventoryOf lists the Fleet's inventory entries of one cluster.
func (h *host) inventoryOf(f *v1alpha1.Fleet, cluster string) []v1alpha1.ResourceRef {
	var out []v1alpha1.ResourceRef
	for _, e := range h.inventory(f) {
		if e.Cluster == cluster {
			out = append(out, e)
		}
	}
	return out
}

// A cluster is removed from Git and warren-reconciler is killed mid-prune,
// after the cluster's PKI Secret is deleted and before the new inventory is
// written. The cluster is then added back: it is a new cluster, made with
// new CAs, and the Fleet converges without a manual step. A PKI Secret
// deleted by hand from a live cluster comes back with the same CAs.
func TestACrashMidPruneThenReAddConverges(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"cp-a", "cp-b", "cp-c"}
	repo, sha := newFleetRepo(t, t.TempDir(), "cp", "cp", names...)
	rec := startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-cp", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	oldPKI := h.pkiUID("cp-c")

	h.killWhenPKISecretDeleted(rec, fleet, "cp-c", func() {
		repo.RemoveFiles(t, "cp-c is no longer needed", clusterFile("cp-c"))
		h.annotate(fleet)
	})
	sha = repo.CommitFiles(t, "cp-c is needed after all", map[string]string{clusterFile("cp-c"): clusterYAML("cp-c", "cp", "1")})
	rec.Restart()
	f := h.waitFleetApplied(fleet, sha, 3*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	if uid := h.pkiUID("cp-c"); uid == "" || uid == oldPKI {
		t.Errorf("cp-c came back with PKI Secret %q, want a new one (was %q)", uid, oldPKI)
	}
	h.assertInventoryLive(f)

	// A live cluster's PKI Secret deleted by hand is made again with the
	// CAs the cluster has (the reconciler still holds them), never new ones.
	before, err := h.kube.CoreV1().Secrets("vc-cp-a").Get(context.Background(), "cp-a-pki", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.kube.CoreV1().Secrets("vc-cp-a").Delete(context.Background(), "cp-a-pki", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next := repo.CommitFiles(t, "cp-b gets more CPU", map[string]string{clusterFile("cp-b"): clusterYAML("cp-b", "cp", "2")})
	h.annotate(fleet)
	f = h.waitFleetApplied(fleet, next, 2*time.Minute)
	after, err := h.kube.CoreV1().Secrets("vc-cp-a").Get(context.Background(), "cp-a-pki", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("cp-a's PKI Secret was not made again: %v", err)
	}
	for k, v := range before.Data {
		if string(after.Data[k]) != string(v) {
			t.Errorf("cp-a's PKI Secret came back with a different %s: its CAs must never change", k)
		}
	}
	h.assertInventoryLive(f)
	h.lostCAsAreRefusedAndNotClaimedApplied(rec, fleet, repo, after)
}

// lostCAsAreRefusedAndNotClaimedApplied restarts the reconciler (it holds
// no copy of any CA then), deletes cp-a's PKI Secret by hand and commits a
// change to cp-b: warren refuses to make new CAs behind the running
// cluster's back and does not claim the revision as applied in full. Restoring the Secret from the copy taken
// before is all it takes to converge.
func (h *host) lostCAsAreRefusedAndNotClaimedApplied(rec *reconcilerProcess, fleet client.ObjectKey, repo *fleetRepo, saved *corev1.Secret) {
	h.t.Helper()
	ctx := context.Background()
	rec.Kill()
	rec.Restart()
	applied := h.fleet(fleet).Status.LastAppliedRevision
	if err := h.kube.CoreV1().Secrets("vc-cp-a").Delete(ctx, "cp-a-pki", metav1.DeleteOptions{}); err != nil {
		h.t.Fatal(err)
	}
	later := repo.CommitFiles(h.t, "cp-b gets even more CPU", map[string]string{clusterFile("cp-b"): clusterYAML("cp-b", "cp", "3")})
	h.annotate(fleet)
	testkit.Eventually(h.t, 2*time.Minute, "the Fleet to refuse new CAs for cp-a at "+later, func() (bool, string) {
		f := h.fleet(fleet)
		c := apimeta.FindStatusCondition(f.Status.Conditions, meta.ReadyCondition)
		return strings.HasSuffix(f.Status.LastAttemptedRevision, later) && c != nil && c.Status == metav1.ConditionFalse &&
			strings.Contains(c.Message, "will not make new CAs"), fleetState(f)
	})
	if f := h.fleet(fleet); f.Status.LastAppliedRevision != applied {
		h.t.Errorf("status.lastAppliedRevision moved from %s although cp-a was not applied: %s", applied, fleetState(f))
	}
	if _, err := h.kube.CoreV1().Secrets("vc-cp-a").Get(ctx, "cp-a-pki", metav1.GetOptions{}); err == nil {
		h.t.Error("warren made cp-a's PKI Secret again without its CAs")
	}

	restored := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: saved.Namespace, Name: saved.Name, Labels: saved.Labels, Annotations: saved.Annotations, OwnerReferences: saved.OwnerReferences},
		Type:       saved.Type, Data: saved.Data, Immutable: saved.Immutable,
	}
	if _, err := h.kube.CoreV1().Secrets("vc-cp-a").Create(ctx, restored, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.annotate(fleet)
	h.assertInventoryLive(h.waitFleetApplied(fleet, later, 2*time.Minute))
}

// pkiUID is the UID of a cluster's PKI Secret, empty when there is none.
func (h *host) pkiUID(cluster string) string {
	h.t.Helper()
	s, err := h.kube.CoreV1().Secrets("vc-"+cluster).Get(context.Background(), cluster+"-pki", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return string(s.UID)
}

// assertInventoryLive checks the Fleet is Ready and that every object its
// inventory lists exists on the host, once: nothing recorded that is not
// there, nothing listed twice.
func (h *host) assertInventoryLive(f *v1alpha1.Fleet) {
	h.t.Helper()
	if c := apimeta.FindStatusCondition(f.Status.Conditions, meta.ReadyCondition); c == nil || c.Status != metav1.ConditionTrue {
		h.t.Errorf("Fleet not Ready: %s", fleetState(f))
	}
	live := map[string]bool{}
	for _, o := range h.sweep(v1alpha1.FleetNameLabel + "=" + f.Name + "," + v1alpha1.FleetNamespaceLabel + "=" + f.Namespace) {
		live[o.Namespace+"/"+o.Name+"/"+o.Resource.Resource] = true
	}
	seen := map[string]bool{}
	for _, e := range h.inventory(f) {
		if seen[e.ID] {
			h.t.Errorf("inventory lists %s twice", e.ID)
		}
		seen[e.ID] = true
		parts := strings.Split(e.ID, "_") // namespace_name_group_kind
		if len(parts) != 4 {
			h.t.Errorf("inventory entry %q is not namespace_name_group_kind", e.ID)
			continue
		}
		if !live[parts[0]+"/"+parts[1]+"/"+resourceOf(parts[3])] {
			h.t.Errorf("inventory lists %s, which is not on the host", e.ID)
		}
	}
}

// resourceOf is the plural resource of the kinds warren renders.
func resourceOf(kind string) string {
	switch kind {
	case "Ingress":
		return "ingresses"
	case "NetworkPolicy":
		return "networkpolicies"
	}
	return strings.ToLower(kind) + "s"
}
