// The snapshot file format (R20): magic, header (format, CRC-32, payload length), then a
// posh.v1.snapshot.Snapshot message (proto/posh/v1/snapshot.proto). Writing is atomic (temp
// file in the same directory, fsync, rename, fsync of the directory); reading is
// all-or-nothing and reports why a file is refused. Knows nothing of the store's shards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/entry.h"
#include "core/result.h"

namespace posh::cache {

// Error::code values of Save/Load (and of WriteSnapshot/ReadSnapshot).
enum SnapshotErrorCode : int {
  kSnapIo = 1,         // open/read/write/fsync/rename failed
  kSnapTruncated = 2,  // shorter than its header says
  kSnapBadMagic = 3,   // not a snapshot file (or unknown header format)
  kSnapChecksum = 4,   // CRC mismatch or trailing bytes: corrupt
  kSnapParse = 5,      // the payload is not a Snapshot message
  kSnapVersion = 6,    // Snapshot.version unknown
  kSnapBadEntry = 7,   // an entry with out-of-range values
};

using SnapshotItems = std::vector<std::pair<Key, std::shared_ptr<const Entry>>>;

// Writes `items` (in the given order; the store passes them sorted by key) to `path`
// atomically, stamped `written_at_ms`. Returns the number of entries written.
Result<size_t> WriteSnapshot(const std::string& path, const SnapshotItems& items,
                             int64_t written_at_ms);

// Reads the snapshot at `path`, dropping entries no longer servable at `now_ms` (R20). A
// missing file is an empty snapshot. Truncated, corrupt, unknown version or an entry with
// out-of-range values: an error, and nothing of the file is returned.
Result<SnapshotItems> ReadSnapshot(const std::string& path, int64_t now_ms);

// One entry alone, in the snapshot's own message (posh.v1.snapshot.SnapEntry): the second
// tier (daemon/l2) stores entries in this form. SerializeEntry never fails for a valid
// entry. ParseEntry returns an empty string on success, else why the bytes are refused
// (not a SnapEntry, or out-of-range values); lifetimes are not judged here.
std::string SerializeEntry(const Key& key, const Entry& entry);
std::string ParseEntry(std::string_view bytes, Key* key, std::shared_ptr<const Entry>* entry);

}  // namespace posh::cache
