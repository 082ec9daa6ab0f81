// Package personal encrypts the personal fields of events before they reach
// the store, and erases them by destroying their key (crypto-shredding): the
// log stays immutable, its hashes and replays stay valid, and what was
// personal becomes noise.
//
// A Policy declares, per event type, which JSON fields are personal and
// which field names their subject (a customer id, say). Wrap the store that
// commands append to with NewStore: each personal field is stored as a
// token, a JSON string
//
//	"chronicle:pd1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext)>"
//
// where the key id names the subject's data key, the 12-byte nonce is
// synthetic (derived from the key, the event id, the field and its value,
// so that a retried append stores the same tokens), and the ciphertext is
// of the field's JSON value (authenticated with the token's prefix and key
// id). Data keys (one per
// subject, 32 random bytes) are kept by a chronicle.KeyStore, wrapped with
// AES-256-GCM by the master key, which never enters the store.
//
// Tokens stay tokens everywhere at rest: in the log, in snapshots and in read
// models. Only output is decrypted, by Keyring.Reveal, which replaces every
// token in a response with its plaintext, or with "[erased]" once its key
// is gone; it asks the KeyStore which of the keys are still live every time,
// so no cache in any process reveals erased data. The price: code between
// the store and the response (deciders, upcasters, projections) sees tokens,
// not plaintext, in personal fields; it may copy and compare them, not read
// them.
//
// Reveal decrypts every token it finds, wherever it came from, so a token
// must reach the store only from Store's own encryption: Store refuses any
// event whose data or metadata holds Prefix in a string. Otherwise anyone
// who saw a stored token could paste it into a field they may write and
// read it back in the clear.
package personal
