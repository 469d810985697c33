// Arbitrary bytes as a write-behind journal: decoding never crashes and keeps
// exactly the intact records (they re-encode to the bytes they came from),
// and opening a journal directory holding them recovers without crashing.
#include <fcntl.h>
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
  // Kept across inputs (cleared, capacity kept): the decoder is fuzzed, not malloc.
  static std::vector<larder::internal::JournalRecord>& records =
      *new std::vector<larder::internal::JournalRecord>;
  static std::string& reencoded = *new std::string;
  records.clear();
  reencoded.clear();
  const size_t intact = larder::internal::DecodeJournalSegment(bytes, &records);
  if (intact > size) std::abort();
  for (const auto& r : records) larder::internal::EncodeJournalRecord(r, &reencoded);
  if (reencoded != bytes.substr(0, intact)) {
    __builtin_printf("fuzz_journal: decoded records do not re-encode to the intact prefix\n");
    std::abort();
  }

  // The same bytes as a segment file on disk. One directory for the whole
  // run, on tmpfs when there is one: the recovery logic is what is fuzzed, not
  // the file system, and creating and deleting a directory on disk per input
  // cost more than everything else together.
  static const std::string& dir = *[] {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    // Never destroyed, so the exit handler below can still use it.
    auto* d =
        new std::string(std::string(base) + "/larder-fuzz-journal-" + std::to_string(::getpid()));
    std::filesystem::remove_all(*d);
    std::filesystem::create_directories(*d);
    std::atexit([] { std::filesystem::remove_all(dir); });
    return d;
  }();
  // Opening recovers segment 1 and starts segment 2; nothing else is made.
  static const std::string segment1 = dir + "/journal-00000001.log";
  static const std::string segment2 = dir + "/journal-00000002.log";
  ::unlink(segment2.c_str());
  const int fd = ::open(segment1.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  std::unique_ptr<larder::internal::Journal> journal;
  larder::internal::Journal::Recovery recovery;
  larder::Status s = larder::internal::Journal::Open(dir, larder::internal::FsyncPolicy::kNever,
                                                     1000000, 1 << 20, &journal, &recovery);
  if (s == larder::Status::kOk) {
    if (recovery.truncated_bytes != size - intact) std::abort();
    // Replay order is sequence order. Not strictly increasing: arbitrary
    // bytes can carry a valid CRC over sequence 0 or over one sequence twice,
    // which our writer never writes (regression-forged-sequence-zero).
    uint64_t last = 0;
    for (const auto& p : recovery.pending) {
      if (p.record.sequence < last || p.record.type == larder::internal::JournalRecord::kAck) {
        std::abort();
      }
      last = p.record.sequence;
    }
    if (recovery.next_sequence <= last) std::abort();
  }
  journal.reset();
  return 0;
}
