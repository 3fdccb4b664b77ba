package localplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// LocalStorageClass is the StorageClass of real nodes' volumes: static
// local volumes, bound when a pod using the claim is scheduled.
const LocalStorageClass = "local"

// localVolumeLabel marks the volumes localkube made, with the node's name.
const localVolumeLabel = "localkube.warren.dev/node"

// volumesPerNode is how many static volumes each real node offers.
const volumesPerNode = 24

// localStorage recycles released volumes, as a local static provisioner
// does: their files are removed and they become Available again.
type localStorage struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *localStorage) stop() {
	l.cancel()
	<-l.done
}

// startLocalStorage makes the local StorageClass (the default when the plane
// has no kwok nodes, whose class is default then) and every node's volumes,
// and starts recycling them.
func (p *Plane) startLocalStorage(ctx context.Context, client kubernetes.Interface) error {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        LocalStorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
	}
	if p.kwokNodes > 0 {
		delete(sc.Annotations, "storageclass.kubernetes.io/is-default-class")
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the local StorageClass: %w", err)
	}
	for _, node := range p.nodes {
		for i := range volumesPerNode {
			dir := filepath.Join(node.dir, "volumes", fmt.Sprintf("pv-%d", i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if _, err := client.CoreV1().PersistentVolumes().Create(ctx, localVolume(node.name, i, dir), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating local volume %d of %s: %w", i, node.name, err)
			}
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	p.storage = &localStorage{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.storage.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			recycleVolumes(rctx, client)
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return nil
}

func localVolume(node string, i int, dir string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("%s-pv-%d", node, i),
			Labels: map[string]string{localVolumeLabel: node},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              LocalStorageClass,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
		},
	}
}

// recycleVolumes empties every Released local volume and makes it
// Available again.
func recycleVolumes(ctx context.Context, client kubernetes.Interface) {
	pvs, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: localVolumeLabel})
	if err != nil {
		return
	}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.Local == nil {
			continue
		}
		dir := pv.Spec.Local.Path
		if err := os.RemoveAll(dir); err != nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			continue
		}
		pv.Spec.ClaimRef = nil
		_, _ = client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	}
}

// RealNodeVolumeDirs lists the directories of the local volumes now bound
// to a claim, for checks that a removed claim's data is gone.
func (p *Plane) RealNodeVolumeDirs(ctx context.Context) (map[string]string, error) {
	client, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return nil, err
	}
	pvs, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: localVolumeLabel})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, pv := range pvs.Items {
		if pv.Spec.ClaimRef != nil && pv.Spec.Local != nil {
			out[pv.Spec.ClaimRef.Namespace+"/"+pv.Spec.ClaimRef.Name] = pv.Spec.Local.Path
		}
	}
	return out, nil
}
