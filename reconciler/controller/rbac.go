package controller

// What warren-reconciler does on the host, and why. config/rbac/role.yaml
// is generated from these markers (make generate).
//
// Fleets: reads them, records status, keeps a finalizer to prune on
// deletion. VirtualClusters: applies one per admitted cluster (server-side
// apply), reports status.
// +kubebuilder:rbac:groups=warren.dev,resources=fleets;virtualclusters,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=warren.dev,resources=fleets/status;virtualclusters/status;fleets/finalizers,verbs=get;update;patch
//
// HostClusters: reads them and their kubeconfig Secrets (Secrets below),
// records what their hosts say. On a remote host, the kubeconfig's user
// needs the rights below (apply config/rbac/role.yaml there and bind it).
// +kubebuilder:rbac:groups=warren.dev,resources=hostclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=warren.dev,resources=hostclusters/status,verbs=get;update;patch
//
// The kinds it renders per cluster (namespace, StatefulSet, Services,
// Secrets, ConfigMaps, the syncer's ServiceAccount/Role/RoleBinding,
// ResourceQuota, LimitRange, NetworkPolicies, Ingress, and the syncer's
// read-only ClusterRole for `nodes: real`): applies, lists to find drift,
// and prunes them. `bind` and `escalate` let it create the syncer's Role
// without holding every verb that Role grants. Secrets also hold each
// cluster's tenant credentials and the key that hashes kubeconfigs;
// ConfigMaps in a Fleet's namespace hold its inventory (inventory_store.go).
// +kubebuilder:rbac:groups="",resources=namespaces;services;secrets;configmaps;serviceaccounts;resourcequotas;limitranges,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings;clusterroles;clusterrolebindings,verbs=get;list;watch;create;update;patch;delete;bind;escalate
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies;ingresses,verbs=get;list;watch;create;update;patch;delete
//
// Nodes and ServiceCIDRs: reads them (endpoints for NodePort, the host's
// service range). Services (above): a dry-run create also finds that
// range, and a refused NodePort create finds the node-port range.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=get;list;watch
//
// services/proxy: fetches the sealed-secrets controller's public
// certificate through the API server, as kubeseal does, for Fleets that
// publish kubeconfigs.
// +kubebuilder:rbac:groups="",resources=services/proxy,verbs=get
//
// Events: reports applies, prunes, rejections and conflicts.
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
