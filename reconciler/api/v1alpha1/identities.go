package v1alpha1

// Labels, annotations and the finalizer warren writes on host objects. They
// are declared here once; every package (reconciler and syncer) reads them
// from here.
const (
	// ManagedByLabel is set to ManagedByValue on everything the reconciler
	// applies.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "warren"

	// FleetNameLabel and FleetNamespaceLabel name the Fleet that owns an
	// object; both must match for warren to touch it.
	FleetNameLabel      = "fleet.warren.dev/name"
	FleetNamespaceLabel = "fleet.warren.dev/namespace"

	// ClusterLabel names the virtual cluster an object belongs to: set by
	// rendering on the reconciler's objects (the inventory records it to
	// select a cluster's objects) and by the syncer on its host twins.
	ClusterLabel = "warren.dev/cluster"

	// FleetFinalizer lets the Fleet controller prune a deleted Fleet's
	// clusters.
	FleetFinalizer = "warren.dev/fleet"

	// InventoryFinalizer keeps a Fleet's inventory ConfigMap until the
	// Fleet is finalized: deleting the Fleet's namespace would otherwise
	// delete the list of what to prune before the Fleet's finalizer reads it.
	InventoryFinalizer = "warren.dev/inventory"

	// InventoryOfLabel on a ConfigMap names the Fleet whose inventory it
	// holds part of.
	InventoryOfLabel = "warren.dev/inventory-of"

	// ShardingKeyLabel on a Fleet names the reconciler shard that
	// reconciles it, Flux's convention: each shard runs with
	// --watch-label-selector=sharding.fluxcd.io/key=<shard> (see
	// config/sharded). warren reads it, never writes it.
	ShardingKeyLabel = "sharding.fluxcd.io/key"

	// RequestedAtAnnotation asks for a reconcile of a Fleet now, outside its
	// interval. Any new value is a new request; the value last acted upon is
	// recorded in status.lastHandledRequestedAt.
	RequestedAtAnnotation = "warren.dev/requested-at"
)

// Labels and annotations of sealed kubeconfigs.
const (
	// KubeconfigOfLabel names the virtual cluster on the SealedSecret and
	// the Secret it unseals into. It is not ClusterLabel on purpose: these
	// objects are applied by whatever syncs the repository (Flux, Argo CD),
	// and warren's prune sweep of a cluster's objects must not touch them.
	KubeconfigOfLabel = "warren.dev/kubeconfig-of"
	// KubeconfigHashAnnotation holds the keyed hash (HMAC-SHA256) of the
	// plaintext kubeconfig and its target; it reveals nothing without the
	// host's key.
	KubeconfigHashAnnotation = "warren.dev/kubeconfig-hmac"
	// SealingKeyAnnotation holds the fingerprint of the public key a file
	// was sealed with, so a rotated sealing key is noticed.
	SealingKeyAnnotation = "warren.dev/sealing-key"
)

// Labels and annotations the syncer puts on the host twins of virtual
// objects (and on the objects it mirrors into a virtual cluster).
const (
	// SyncerNamespaceLabel is the virtual namespace; selectors use it so a
	// service in one virtual namespace never matches pods of another.
	SyncerNamespaceLabel = "warren.dev/namespace"
	// SyncerManagedByLabel marks objects the syncer created (value
	// SyncerManagedByValue).
	SyncerManagedByLabel = "warren.dev/managed-by"
	SyncerManagedByValue = "syncer"

	// The origin of a host twin: the virtual cluster, namespace, name, kind
	// and UID of the object it came from.
	OriginClusterAnnotation   = ClusterLabel
	OriginNamespaceAnnotation = SyncerNamespaceLabel
	OriginNameAnnotation      = "warren.dev/name"
	OriginKindAnnotation      = "warren.dev/kind"
	OriginUIDAnnotation       = "warren.dev/uid"
)
