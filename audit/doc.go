// Package audit is chronicle's tamper evidence, offline: the definitions of
// event hashes, Merkle roots and seals, and the checks of an exported audit
// bundle. It opens no store; the stores, the sealer and the command line call
// it.
//
// # Definitions
//
// An event's hash is the SHA-256 of these lines joined by "\n" (UTF-8, no
// trailing newline): prev_hash, stream_id, version (decimal), event_id, type,
// schema_version (decimal, as stored), recorded_at (UTC, TimeFormat: always
// six fractional digits), the hex SHA-256 of the stored data and the hex
// SHA-256 of the stored metadata ({} when none). "Stored" is the JSON as
// appended, before any upcasting, in RFC 8785 (JCS) canonical form (see
// Canonicalize). prev_hash is the hash of the stream's previous event, 64
// zeros for version 1 (HashEvent, CheckStream). Hashes are written as 64
// lowercase hex digits.
//
// A seal covers the events after the previous seal up to its
// last_checkpoint, in the global log's read order. Its root is the RFC 6962
// Merkle tree hash of their hashes as leaves: leaf = SHA-256(0x00 || 32 hash
// bytes), node = SHA-256(0x01 || left || right), SHA-256 of nothing for no
// leaves (MerkleRoot, InclusionProof, VerifyInclusion). Its seal_hash is the
// SHA-256 of the lines seq, last_checkpoint, count, root, prev_seal_hash (64
// zeros for seq 1) and sealed_at joined by "\n" (SealHash). A signed seal has
// signature = base64 (standard, padded) Ed25519 over the ASCII seal_hash, and
// key_id = the first 16 hex digits of SHA-256 of the raw 32-byte public key
// (Sign, KeyID).
//
// Numbers in data and metadata are IEEE 754 doubles, as RFC 8785 says: 1.0
// and 1 hash alike, and so do two integers beyond 2^53 that round to the same
// double. Send such integers as strings when they matter.
//
// # Bundles
//
// A Bundle is what `chronicle audit export` writes and `chronicle audit
// check` verifies: {"events", "seals", "proofs", "public_keys"}. Events are
// in the log's read order with their stored data and metadata, position,
// checkpoint, hash and prev_hash; seals are all of them, from seq 1; a proof
// is {"position", "seq", "index", "path"}: the event at position is leaf
// index (from 0) of seal seq's tree, path its RFC 6962 audit path from the
// leaf up, in hex. A bundle of the whole log needs no proofs: each seal's
// root is recomputed from its events. Check verifies everything and names the
// first failure.
//
// # What a bundle proves, and what it cannot
//
// A bundle that passes Check shows that each event it holds is the event
// that was hashed when it was appended (any change to a hashed field breaks
// its hash); that each stream's events follow one another with none missing,
// inserted or reordered; that the sealed events are the ones their seals
// covered, in that order; that the seals form one chain; and, with the
// sealing public key obtained elsewhere (Options.PublicKey, `--public-key`),
// that the key's owner made the seals. Against only the bundle's own keys,
// signatures show consistency, not authorship: whoever rewrites a bundle can
// re-sign it with a key of their own.
//
// It cannot show:
//
//   - Events after the last seal (the unsealed tail, about a second of
//     writes) removed from the end of the log: they are hashed and chained,
//     but nothing that comes after them says they existed.
//   - A whole suffix of seals removed, together with the events they cover,
//     unless the seal_hash of a later seal was kept elsewhere (an anchor: copy
//     GET /audit/seals/latest somewhere out of reach of the store's
//     administrators, and compare it with the bundle's seal of that seq).
//   - In a bundle of some orders only (with proofs), that it holds every
//     sealed event of those orders: the last events of an order left out of
//     the export leave no trace in the others. A bundle of the whole log, or
//     `chronicle verify --integrity` on the store, shows that.
//   - position and checkpoint are where an event sits, not what it is: they
//     are not hashed (so that a copy to another store keeps the hashes).
//     Only the order of sealed events, and the checkpoint of each seal's last
//     event, are sealed. Check requires a proof of every event whose
//     checkpoint is at or before the last seal's last_checkpoint, but events
//     whose checkpoints were moved past it read as the unsealed tail
//     (Unsealed counts it: about a second of writes before the export).
//
// # How an auditor verifies
//
// Get the bundle, and the sealing public key and the latest seal_hash from
// their owner through another channel. Run `chronicle audit check
// bundle.json --public-key KEY`: exit 0 means everything above holds; exit 1
// names the first event (position, stream, version) or seal (seq) that does
// not, and what broke. Then compare the anchored seal_hash with the bundle's
// seal of the same seq.
package audit
