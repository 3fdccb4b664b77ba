package pods

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/warren-dev/warren/syncer"
)

// References lists every virtual object a pod names and its host twin will
// name in translation: Secrets, ConfigMaps and claims in volumes (projected
// sources and generic ephemeral volumes too), environment and image pull
// secrets. Each is checked against its host twin's origin before the host
// pod is written.
func References(v *corev1.Pod) []syncer.Ref {
	ns := v.Namespace
	var refs []syncer.Ref
	add := func(kind, name, field string) {
		if name != "" {
			refs = append(refs, syncer.Ref{Kind: kind, Namespace: ns, Name: name, Field: field})
		}
	}
	for i, vol := range v.Spec.Volumes {
		f := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case vol.ConfigMap != nil:
			add("ConfigMap", vol.ConfigMap.Name, f+".configMap")
		case vol.Secret != nil:
			add("Secret", vol.Secret.SecretName, f+".secret")
		case vol.PersistentVolumeClaim != nil:
			add("PersistentVolumeClaim", vol.PersistentVolumeClaim.ClaimName, f+".persistentVolumeClaim")
		case vol.Ephemeral != nil:
			add("PersistentVolumeClaim", EphemeralClaimName(v, vol.Name), f+".ephemeral")
		case vol.Projected != nil:
			for j, src := range vol.Projected.Sources {
				if src.ConfigMap != nil {
					add("ConfigMap", src.ConfigMap.Name, fmt.Sprintf("%s.projected.sources[%d].configMap", f, j))
				}
				if src.Secret != nil {
					add("Secret", src.Secret.Name, fmt.Sprintf("%s.projected.sources[%d].secret", f, j))
				}
			}
		}
	}
	containers := func(field string, cs []corev1.Container) {
		for i, c := range cs {
			f := fmt.Sprintf("spec.%s[%d]", field, i)
			for j, e := range c.Env {
				if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
					add("ConfigMap", vf.ConfigMapKeyRef.Name, fmt.Sprintf("%s.env[%d].valueFrom.configMapKeyRef", f, j))
				}
				if vf := e.ValueFrom; vf != nil && vf.SecretKeyRef != nil {
					add("Secret", vf.SecretKeyRef.Name, fmt.Sprintf("%s.env[%d].valueFrom.secretKeyRef", f, j))
				}
			}
			for j, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					add("ConfigMap", e.ConfigMapRef.Name, fmt.Sprintf("%s.envFrom[%d].configMapRef", f, j))
				}
				if e.SecretRef != nil {
					add("Secret", e.SecretRef.Name, fmt.Sprintf("%s.envFrom[%d].secretRef", f, j))
				}
			}
		}
	}
	containers("initContainers", v.Spec.InitContainers)
	containers("containers", v.Spec.Containers)
	for i, s := range v.Spec.ImagePullSecrets {
		add("Secret", s.Name, fmt.Sprintf("spec.imagePullSecrets[%d]", i))
	}
	return refs
}
