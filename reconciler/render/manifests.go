package render

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// initManifests returns the data of the N-init-manifests ConfigMap: one YAML
// stream per key, applied by the syncer inside the virtual cluster in key
// order.
func initManifests(vc *v1alpha1.VirtualCluster) (map[string]string, error) {
	data := map[string]string{}
	if len(vc.Spec.Access) > 0 {
		s, err := accessBindings(vc)
		if err != nil {
			return nil, err
		}
		data["00-access.yaml"] = s
	}
	if vc.Spec.Distro == v1alpha1.DistroK8s {
		data["10-coredns.yaml"] = coreDNS
	}
	return data, nil
}

// accessBindings turns spec.access into ClusterRoleBindings, one per
// cluster role, subjects in the order the definition lists them.
func accessBindings(vc *v1alpha1.VirtualCluster) (string, error) {
	type subject struct {
		Kind      string `json:"kind"`
		APIGroup  string `json:"apiGroup,omitempty"`
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
	}
	var roles []string
	subjects := map[string][]subject{}
	seen := map[string]bool{}
	for _, g := range vc.Spec.Access {
		if _, ok := subjects[g.ClusterRole]; !ok {
			roles = append(roles, g.ClusterRole)
			subjects[g.ClusterRole] = nil
		}
		for _, s := range g.Subjects {
			key := fmt.Sprintf("%s/%s/%s/%s", g.ClusterRole, s.Kind, s.Namespace, s.Name)
			if seen[key] {
				continue
			}
			seen[key] = true
			out := subject{Kind: string(s.Kind), Name: s.Name, Namespace: s.Namespace}
			if s.Kind != v1alpha1.SubjectServiceAccount {
				out.APIGroup = "rbac.authorization.k8s.io"
			}
			subjects[g.ClusterRole] = append(subjects[g.ClusterRole], out)
		}
	}
	var buf bytes.Buffer
	for i, role := range roles {
		obj := map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1",
			"kind":       "ClusterRoleBinding",
			"metadata": map[string]any{
				"name":   "warren-access-" + role,
				"labels": map[string]any{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
			},
			"roleRef": map[string]any{
				"apiGroup": "rbac.authorization.k8s.io",
				"kind":     "ClusterRole",
				"name":     role,
			},
			"subjects": subjects[role],
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return "", fmt.Errorf("rendering access binding for %s: %w", role, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.String(), nil
}

// coreDNS is cluster DNS for the k8s distro (k3s ships its own). The
// kube-dns Service gets its ClusterIP from the syncer, which gives every
// virtual service its host twin's address.
const coreDNS = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:1053 {
        errors
        health
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        forward . /etc/resolv.conf
        cache 30
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: kube-dns
  template:
    metadata:
      labels:
        k8s-app: kube-dns
    spec:
      serviceAccountName: coredns
      # The node's resolver, not the cluster's own Service: CoreDNS
      # forwarding to itself is a loop (its loop plugin then exits).
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: coredns
        image: ` + coreDNSImage + `
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - name: dns
          containerPort: 1053
          protocol: UDP
        - name: dns-tcp
          containerPort: 1053
          protocol: TCP
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: [ALL]
        volumeMounts:
        - name: config
          mountPath: /etc/coredns
          readOnly: true
      volumes:
      - name: config
        configMap:
          name: coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  selector:
    k8s-app: kube-dns
  ports:
  - name: dns
    port: 53
    targetPort: 1053
    protocol: UDP
  - name: dns-tcp
    port: 53
    targetPort: 1053
    protocol: TCP
`
