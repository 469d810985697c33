// Arbitrary bytes as a write-behind journal: decoding never crashes and keeps
// exactly the intact records (they re-encode to the bytes they came from),
// and opening a journal directory holding them recovers without crashing.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<larder::internal::JournalRecord> records;
  const size_t intact = larder::internal::DecodeJournalSegment(bytes, &records);
  if (intact > size) std::abort();
  std::string reencoded;
  for (const auto& r : records) larder::internal::EncodeJournalRecord(r, &reencoded);
  if (reencoded != bytes.substr(0, intact)) {
    __builtin_printf("fuzz_journal: decoded records do not re-encode to the intact prefix\n");
    std::abort();
  }

  // The same bytes as a segment file on disk.
  static const std::string dir = [] {
    std::string d = "/tmp/larder-fuzz-journal-" + std::to_string(::getpid());
    return d;
  }();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (FILE* f = std::fopen((dir + "/journal-00000001.log").c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  std::unique_ptr<larder::internal::Journal> journal;
  larder::internal::Journal::Recovery recovery;
  larder::Status s = larder::internal::Journal::Open(dir, larder::internal::FsyncPolicy::kNever,
                                                     1000000, 1 << 20, &journal, &recovery);
  if (s == larder::Status::kOk) {
    if (recovery.truncated_bytes != size - intact) std::abort();
    uint64_t last = 0;
    for (const auto& p : recovery.pending) {
      if (p.record.sequence <= last || p.record.type == larder::internal::JournalRecord::kAck) {
        std::abort();
      }
      last = p.record.sequence;
    }
  }
  journal.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
