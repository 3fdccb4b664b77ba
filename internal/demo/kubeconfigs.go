package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
)

// What the demo prints of warren's kubeconfigs is chosen so that no
// credential ever reaches the terminal: of a sealed file, its kind, target
// and the names of its encrypted keys; of an unsealed Secret, its key names
// and sizes, and of the kubeconfig inside, only the server it points at and
// the user name it authenticates as.

// showPublished shows the result of publishing: the Fleet's report, the
// commits warren pushed, the sealed files a pull brings, and the first
// cluster's file unsealed on the host.
func (d *demo) showPublished(ctx context.Context, repos *fleetRepos, clusters []v1alpha1.VirtualCluster) error {
	var f v1alpha1.Fleet
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: fleetNamespace, Name: fleetName}, &f); err != nil {
		return err
	}
	d.say("Fleet %s/%s KubeconfigsPublished: %s; status.kubeconfigs.lastCommit %s", f.Namespace, f.Name,
		conditions.GetMessage(&f, v1alpha1.KubeconfigsPublishedCondition), shortSHA(f.Status.Kubeconfigs.LastCommit))
	before, err := repos.Head()
	if err != nil {
		return err
	}
	if err := d.showPushedCommits(ctx, repos, before); err != nil {
		return err
	}
	files, err := readSealedFiles(repos.CloneDir)
	if err != nil {
		return err
	}
	for i := range clusters {
		vc := &clusters[i]
		if vc.Status.Kubeconfig == nil || !slices.ContainsFunc(files, func(f sealedFile) bool { return f.path == vc.Status.Kubeconfig.Path }) {
			return fmt.Errorf("%s reports its kubeconfig published, but the pull brought no file for it", vc.Name)
		}
	}
	d.say("%s/ after the pull: SealedSecrets only the host's sealed-secrets controller can open", v1alpha1.DefaultKubeconfigPath)
	d.showSealedFiles(files)

	vc := &clusters[0]
	i := slices.IndexFunc(files, func(f sealedFile) bool { return f.path == vc.Status.Kubeconfig.Path })
	secret, err := d.unseal(ctx, files[i])
	if err != nil {
		return err
	}
	d.showSecret(secret)
	if err := d.describeKubeconfig(secret, vc); err != nil {
		return err
	}
	if d.real() {
		return d.showTenant(ctx, secret, vc)
	}
	d.say("Nothing can connect to it here: there is no container runtime, so %s's control plane pods", vc.Name)
	d.say("are kwok fakes, reported Running, with no API server behind them.")
	return nil
}

// waitFileRemoved waits until the remote's main no longer holds path.
func (d *demo) waitFileRemoved(ctx context.Context, repos *fleetRepos, path string) error {
	return d.poll(ctx, 250*time.Millisecond, func() (bool, error) {
		has, err := repos.RemoteHasFile(path)
		return !has, err
	}, func() error {
		return fmt.Errorf("%s is still in Git %s after its cluster was pruned; %s", path, d.opts.Timeout, d.fleetState(ctx))
	})
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// showPushedCommits pulls the working clone and prints the commits that
// arrived since the clone's head was since, so a reader sees who made them
// and what they say.
func (d *demo) showPushedCommits(ctx context.Context, repos *fleetRepos, since plumbing.Hash) error {
	if err := repos.Pull(ctx); err != nil {
		return err
	}
	commits, err := repos.CommitsSince(since)
	if err != nil {
		return err
	}
	if len(commits) == 0 {
		return errors.New("git pull brought no new commit")
	}
	d.say("git pull in %s brings %d commit(s) warren pushed:", repos.CloneDir, len(commits))
	for _, c := range commits {
		fmt.Fprintf(d.out, "    commit %s  %s <%s>\n", shortSHA(c.Hash.String()), c.Author.Name, c.Author.Email)
		for _, line := range strings.Split(strings.TrimRight(c.Message, "\n"), "\n") {
			if line == "" {
				fmt.Fprintln(d.out)
				continue
			}
			fmt.Fprintf(d.out, "        %s\n", line)
		}
	}
	return nil
}

// sealedFile is one file under kubeconfigs/ as the demo shows it.
type sealedFile struct {
	path      string
	namespace string
	name      string
	keys      []string
	content   []byte
}

// readSealedFiles reads every file under the clone's kubeconfigs/ folder and
// checks that each is a SealedSecret: in the demo's repository only warren
// writes there, and it must never write anything else.
func readSealedFiles(cloneDir string) ([]sealedFile, error) {
	dir := v1alpha1.DefaultKubeconfigPath
	entries, err := os.ReadDir(filepath.Join(cloneDir, dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // Git keeps no empty folder: the last file's removal took it
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s/: %w", dir, err)
	}
	var out []sealedFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		rel := path.Join(dir, e.Name())
		data, err := os.ReadFile(filepath.Join(cloneDir, rel))
		if err != nil {
			return nil, err
		}
		var ss ssv1alpha1.SealedSecret
		if err := yaml.UnmarshalStrict(data, &ss); err != nil {
			return nil, fmt.Errorf("%s is not a SealedSecret: %w", rel, err)
		}
		if ss.APIVersion != ssv1alpha1.SchemeGroupVersion.String() || ss.Kind != "SealedSecret" {
			return nil, fmt.Errorf("%s is a %s %s, not a SealedSecret", rel, ss.APIVersion, ss.Kind)
		}
		f := sealedFile{path: rel, namespace: ss.Namespace, name: ss.Name, content: data}
		for k := range ss.Spec.EncryptedData {
			f.keys = append(f.keys, k)
		}
		sort.Strings(f.keys)
		out = append(out, f)
	}
	return out, nil
}

func (d *demo) showSealedFiles(files []sealedFile) {
	w := tabwriter.NewWriter(d.out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "    FILE\tKIND\tUNSEALS AS (NAMESPACE/NAME)\tENCRYPTED KEYS")
	for _, f := range files {
		fmt.Fprintf(w, "    %s\tSealedSecret\t%s/%s\t%s\n", f.path, f.namespace, f.name, strings.Join(f.keys, ","))
	}
	w.Flush()
}

// unseal applies a sealed file to the host, as Flux or Argo CD would, and
// waits for the sealed-secrets controller to make the Secret.
func (d *demo) unseal(ctx context.Context, f sealedFile) (*corev1.Secret, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.namespace}}
	if err := d.c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", f.namespace, err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(f.content, &obj.Object); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	if err := d.c.Patch(ctx, obj, client.Apply, client.FieldOwner("warren-demo"), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("applying %s: %w", f.path, err)
	}
	d.say("applied %s to the host (what Flux or Argo CD would do with kubeconfigs/)", f.path)
	var s corev1.Secret
	err := d.poll(ctx, 100*time.Millisecond, func() (bool, error) {
		err := d.c.Get(ctx, client.ObjectKey{Namespace: f.namespace, Name: f.name}, &s)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}, func() error {
		return fmt.Errorf("the sealed-secrets controller did not unseal %s into Secret %s/%s within %s (its log: %s)", f.path, f.namespace, f.name, d.opts.Timeout, d.sealed.LogPath)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// showSecret prints what a Secret holds without a byte of its values.
func (d *demo) showSecret(s *corev1.Secret) {
	var keys []string
	for k, v := range s.Data {
		keys = append(keys, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	sort.Strings(keys)
	owner := "nothing"
	for _, o := range s.OwnerReferences {
		owner = o.Kind + " " + o.Name
	}
	d.say("the sealed-secrets controller unsealed it: Secret %s/%s, owned by %s, holding %s; values not shown",
		s.Namespace, s.Name, owner, strings.Join(keys, ", "))
}

// describeKubeconfig says where the unsealed kubeconfig points and who it
// authenticates as, and why nothing here can use it.
func (d *demo) describeKubeconfig(s *corev1.Secret, vc *v1alpha1.VirtualCluster) error {
	cfg, err := clientcmd.Load(s.Data[kubeconfig.SecretKey])
	if err != nil {
		// Not wrapped: a parse error may quote the credentials it choked on.
		return fmt.Errorf("the unsealed Secret %s/%s does not hold a kubeconfig under %q", s.Namespace, s.Name, kubeconfig.SecretKey)
	}
	current := cfg.Contexts[cfg.CurrentContext]
	if current == nil || cfg.Clusters[current.Cluster] == nil {
		return fmt.Errorf("the kubeconfig in Secret %s/%s has no current context", s.Namespace, s.Name)
	}
	server := cfg.Clusters[current.Cluster].Server
	if server != vc.Status.Endpoint {
		return fmt.Errorf("the kubeconfig in Secret %s/%s points at %s, but %s's endpoint is %s", s.Namespace, s.Name, server, vc.Name, vc.Status.Endpoint)
	}
	d.say("the kubeconfig points at %s (%s's endpoint: %s)", server, vc.Name, endpointKind(vc))
	d.say("and authenticates as user %s with a client certificate (neither it nor its key is shown).", current.AuthInfo)
	return nil
}

// endpointKind says in words what kind of address a cluster's endpoint is.
func endpointKind(vc *v1alpha1.VirtualCluster) string {
	switch vc.Spec.Expose.Type {
	case v1alpha1.ExposeIngress:
		return "its ingress host"
	case v1alpha1.ExposeNodePort:
		return "a host node's address and its API Service's node port"
	case v1alpha1.ExposeLoadBalancer:
		return "its API Service's load balancer"
	}
	return "its API Service's name inside the host"
}
