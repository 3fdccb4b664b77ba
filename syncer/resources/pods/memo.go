package pods

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// memo remembers, per virtual pod, the writes the syncer has already made
// and its caches may not show yet: the token Secret (and when it is due for
// refresh) and the binding. Without it every event that arrives before the
// cache catches up would request new tokens and bind again, only to be
// refused as a duplicate.
type memo struct {
	mu   sync.Mutex
	pods map[types.NamespacedName]podMemo
}

type podMemo struct {
	uid types.UID
	// tokensWritten is when the token Secret was last written, and
	// tokensRefresh when it is due for a refresh.
	tokensWritten, tokensRefresh time.Time
	// boundToNode is the node the virtual pod was bound to.
	boundToNode string
	// ephemeralReported is how many ephemeral containers the tenant was
	// told are not run.
	ephemeralReported int
}

// cacheLag is how long a write is trusted over a cache that does not show
// it yet; after that the cache is believed again (an object deleted by hand
// is written anew).
const cacheLag = time.Minute

// get returns what is remembered for the pod with this UID.
func (m *memo) get(key types.NamespacedName, uid types.UID) podMemo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pods[key]; ok && p.uid == uid {
		return p
	}
	return podMemo{uid: uid}
}

// update changes what is remembered for the pod with this UID (forgetting
// what was remembered for an earlier pod of the same name).
func (m *memo) update(key types.NamespacedName, uid types.UID, change func(*podMemo)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pods == nil {
		m.pods = map[types.NamespacedName]podMemo{}
	}
	p, ok := m.pods[key]
	if !ok || p.uid != uid {
		p = podMemo{uid: uid}
	}
	change(&p)
	m.pods[key] = p
}

// forget drops the pod once it is gone from the virtual cluster.
func (m *memo) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, key)
}
