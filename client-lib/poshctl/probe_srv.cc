#include "probe_srv.h"

#include <algorithm>

namespace posh::ctl::probe {

bool SaysNotOffered(const std::vector<SrvRecord>& records) {
  return records.size() == 1 && records[0].target == ".";
}

std::vector<SrvRecord> OrderSrv(std::vector<SrvRecord> starttls, std::vector<SrvRecord> direct,
                                const RandomUpTo& random) {
  std::vector<SrvRecord> all;
  for (auto* list : {&direct, &starttls}) {
    for (auto& r : *list) {
      if (r.target != "." && !r.target.empty()) all.push_back(std::move(r));
    }
  }
  // Direct TLS was listed first; a stable sort keeps that within equal (priority, weight 0).
  std::stable_sort(all.begin(), all.end(), [](const SrvRecord& a, const SrvRecord& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    return (a.weight == 0) && (b.weight != 0);
  });
  std::vector<SrvRecord> out;
  out.reserve(all.size());
  size_t group_start = 0;
  while (group_start < all.size()) {
    size_t group_end = group_start;
    while (group_end < all.size() && all[group_end].priority == all[group_start].priority) {
      ++group_end;
    }
    std::vector<SrvRecord> group(all.begin() + static_cast<std::ptrdiff_t>(group_start),
                                 all.begin() + static_cast<std::ptrdiff_t>(group_end));
    while (!group.empty()) {
      uint32_t sum = 0;
      for (const auto& r : group) sum += r.weight;
      uint32_t pick = random ? random(sum) : 0;
      if (pick > sum) pick = sum;  // a misbehaving source must not run past the list
      uint32_t running = 0;
      size_t chosen = group.size() - 1;
      for (size_t i = 0; i < group.size(); ++i) {
        running += group[i].weight;
        if (running >= pick) {
          chosen = i;
          break;
        }
      }
      out.push_back(std::move(group[chosen]));
      group.erase(group.begin() + static_cast<std::ptrdiff_t>(chosen));
    }
    group_start = group_end;
  }
  return out;
}

}  // namespace posh::ctl::probe
