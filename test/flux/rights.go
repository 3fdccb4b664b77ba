package flux

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// crdControllerRole is the ClusterRole Flux's install binds its
// controllers to, here with the rules these two need: their own kinds,
// reading the Secrets and ConfigMaps their objects name, recording events,
// and leases.
const crdControllerRole = "crd-controller-" + Namespace

// grantRights creates flux-system, the controllers' ServiceAccounts and the
// bindings `flux install` makes: both controllers to crd-controller, and
// kustomize-controller, which applies whatever its sources hold, to
// cluster-admin (Flux's cluster-reconciler binding).
func grantRights(ctx context.Context, kube kubernetes.Interface) error {
	rbac := kube.RbacV1()
	subjects := []rbacv1.Subject{
		{Kind: rbacv1.ServiceAccountKind, Namespace: Namespace, Name: SourceController},
		{Kind: rbacv1.ServiceAccountKind, Namespace: Namespace, Name: KustomizeController},
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"namespace " + Namespace, func() error {
			_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{})
			return err
		}},
		{"ServiceAccount " + SourceController, func() error { return serviceAccount(ctx, kube, SourceController) }},
		{"ServiceAccount " + KustomizeController, func() error { return serviceAccount(ctx, kube, KustomizeController) }},
		{"ClusterRole " + crdControllerRole, func() error {
			_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: crdControllerRole},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{"source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io"}, Resources: []string{"*"}, Verbs: []string{"*"}},
					{APIGroups: []string{""}, Resources: []string{"namespaces", "secrets", "configmaps", "serviceaccounts"}, Verbs: []string{"get", "list", "watch"}},
					{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
					{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}},
				},
			}, metav1.CreateOptions{})
			return err
		}},
		{"ClusterRoleBinding " + crdControllerRole, func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: crdControllerRole},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: crdControllerRole},
				Subjects:   subjects,
			}, metav1.CreateOptions{})
			return err
		}},
		{"ClusterRoleBinding cluster-reconciler-" + Namespace, func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-reconciler-" + Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   subjects[1:],
			}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s for Flux: %w", s.what, err)
		}
	}
	return nil
}

func serviceAccount(ctx context.Context, kube kubernetes.Interface, name string) error {
	_, err := kube.CoreV1().ServiceAccounts(Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}
