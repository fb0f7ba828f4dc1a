// The Prometheus exposition of GetStatsResponse (proto/posh/v1/prometheus.h): every counter
// and gauge is there, the histogram is cumulative and ends in +Inf with _sum and _count,
// and the daemon's own histogram goes through FillStats unchanged.
#include "posh/v1/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/posh_service.h"
#include "server/stats.h"

namespace posh::metrics {
namespace {

// name{labels} -> value, and the families' TYPE lines; fails the test on a line that is
// not a comment or a "name value" sample.
struct Parsed {
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
  std::vector<std::string> order;  // sample names in order
};

Parsed Parse(const std::string& text) {
  Parsed p;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      p.helps[rest.substr(0, rest.find(' '))] = rest.substr(rest.find(' ') + 1);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      p.types[rest.substr(0, rest.find(' '))] = rest.substr(rest.find(' ') + 1);
    } else {
      auto sp = line.rfind(' ');
      EXPECT_NE(sp, std::string::npos) << line;
      if (sp == std::string::npos) continue;
      EXPECT_EQ(p.samples.count(line.substr(0, sp)), 0u) << "duplicate " << line;
      p.samples[line.substr(0, sp)] = line.substr(sp + 1);
      p.order.push_back(line.substr(0, sp));
    }
  }
  return p;
}

constexpr char kHist[] = "poshd_retrieval_duration_seconds";

TEST(Prometheus, EveryCounterAndGaugeOfGetStatsIsExported) {
  // Each uint64 field gets a distinct value; each must appear exactly once, as a counter
  // (…_total) or a gauge. A field added to GetStatsResponse and forgotten here fails.
  v1::GetStatsResponse s;
  const auto* d = s.GetDescriptor();
  const auto* r = s.GetReflection();
  std::set<std::string> expected;
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->type() != google::protobuf::FieldDescriptor::TYPE_UINT64) continue;
    r->SetUInt64(&s, f, 1000 + f->number());
    expected.insert(std::to_string(1000 + f->number()));
  }
  ASSERT_GE(expected.size(), 14u);
  Parsed p = Parse(FormatPrometheus(s));
  std::set<std::string> seen;
  for (const auto& [name, value] : p.samples) {
    if (name.rfind(kHist, 0) == 0 || name == "poshd_start_time_seconds") continue;
    EXPECT_EQ(name.rfind("poshd_", 0), 0u) << name;
    ASSERT_TRUE(p.types.count(name)) << "no TYPE for " << name;
    ASSERT_TRUE(p.helps.count(name)) << "no HELP for " << name;
    const std::string& type = p.types[name];
    if (type == "counter") {
      EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
    } else {
      EXPECT_EQ(type, "gauge") << name;
      EXPECT_EQ(name.find("_total"), std::string::npos) << name;
    }
    EXPECT_TRUE(seen.insert(value).second) << "value " << value << " twice";
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(p.samples["poshd_lookups_total"], std::to_string(1000 + 1));
  EXPECT_EQ(p.samples["poshd_cache_entries"], std::to_string(1000 + 7));
  EXPECT_EQ(p.samples["poshd_retrievals_in_flight"], std::to_string(1000 + 8));
  EXPECT_EQ(p.types["poshd_cache_entries"], "gauge");
  EXPECT_EQ(p.types["poshd_retrievals_in_flight"], "gauge");
}

TEST(Prometheus, HistogramIsCumulativeInSecondsWithInfSumAndCount) {
  v1::GetStatsResponse s;
  auto* h = s.mutable_retrieval_latency();
  for (double ms : {1.0, 5.0, 10.0}) h->add_bucket_upper_ms(ms);
  for (uint64_t c : {1, 2, 0, 3}) h->add_counts(c);  // the last one: above 10 ms
  h->set_sum_ms(1234.5);
  h->set_p50_ms(5);  // derived from the buckets: not exported
  Parsed p = Parse(FormatPrometheus(s));
  EXPECT_EQ(p.types[kHist], "histogram");
  EXPECT_TRUE(p.helps.count(kHist));
  const std::string b = std::string(kHist) + "_bucket";
  EXPECT_EQ(p.samples[b + "{le=\"0.001\"}"], "1");
  EXPECT_EQ(p.samples[b + "{le=\"0.005\"}"], "3");
  EXPECT_EQ(p.samples[b + "{le=\"0.01\"}"], "3");
  EXPECT_EQ(p.samples[b + "{le=\"+Inf\"}"], "6");
  EXPECT_EQ(p.samples[std::string(kHist) + "_count"], "6");
  EXPECT_EQ(p.samples[std::string(kHist) + "_sum"], "1.2345");
  // Order: buckets by increasing le, +Inf last, then _sum and _count.
  std::vector<std::string> hist;
  for (const auto& n : p.order) {
    if (n.rfind(kHist, 0) == 0) hist.push_back(n);
  }
  EXPECT_EQ(hist,
            (std::vector<std::string>{b + "{le=\"0.001\"}", b + "{le=\"0.005\"}",
                                      b + "{le=\"0.01\"}", b + "{le=\"+Inf\"}",
                                      std::string(kHist) + "_sum", std::string(kHist) + "_count"}));
  for (const auto& [name, v] : p.samples) EXPECT_EQ(name.find("p50"), std::string::npos);
}

TEST(Prometheus, IrregularBoundsKeepCountsCumulativeAndExact) {
  v1::GetStatsResponse s;
  auto* h = s.mutable_retrieval_latency();
  // A repeated bound, a decreasing one, a NaN and an infinite one are left out; their
  // counts move into the next bucket written. Counts past the bounds all go to +Inf.
  const double inf = std::numeric_limits<double>::infinity();
  for (double ms : {2.0, 2.0, 1.0, std::nan(""), 4.0, inf}) h->add_bucket_upper_ms(ms);
  for (uint64_t c : {1, 1, 1, 1, 1, 1, 1, 1}) h->add_counts(c);
  Parsed p = Parse(FormatPrometheus(s));
  const std::string b = std::string(kHist) + "_bucket";
  EXPECT_EQ(p.samples[b + "{le=\"0.002\"}"], "1");
  EXPECT_EQ(p.samples[b + "{le=\"0.004\"}"], "5");
  EXPECT_EQ(p.samples[b + "{le=\"+Inf\"}"], "8");
  EXPECT_EQ(p.samples[std::string(kHist) + "_count"], "8");
  size_t buckets = 0;
  for (const auto& [name, v] : p.samples) buckets += name.rfind(b, 0) == 0;
  EXPECT_EQ(buckets, 3u);
}

TEST(Prometheus, EmptyStatsStillHaveTheInfBucket) {
  Parsed p = Parse(FormatPrometheus(v1::GetStatsResponse()));
  EXPECT_EQ(p.samples[std::string(kHist) + "_bucket{le=\"+Inf\"}"], "0");
  EXPECT_EQ(p.samples[std::string(kHist) + "_sum"], "0");
  EXPECT_EQ(p.samples[std::string(kHist) + "_count"], "0");
  EXPECT_EQ(p.samples["poshd_start_time_seconds"], "0");
}

TEST(Prometheus, StartTimeInSeconds) {
  v1::GetStatsResponse s;
  s.mutable_started_at()->set_seconds(1800000000);
  s.mutable_started_at()->set_nanos(250000000);
  Parsed p = Parse(FormatPrometheus(s));
  EXPECT_EQ(p.types["poshd_start_time_seconds"], "gauge");
  EXPECT_EQ(p.samples["poshd_start_time_seconds"], "1800000000.25");
}

TEST(Prometheus, Values) {
  EXPECT_EQ(FormatPrometheusValue(0), "0");
  EXPECT_EQ(FormatPrometheusValue(0.001), "0.001");
  EXPECT_EQ(FormatPrometheusValue(5.0 / 1000), "0.005");
  EXPECT_EQ(FormatPrometheusValue(10), "10");
  EXPECT_EQ(FormatPrometheusValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatPrometheusValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatPrometheusValue(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(FormatPrometheusValue(0.1 + 0.2)), 0.1 + 0.2);  // round-trips
}

TEST(Prometheus, LargeCountersAreExactIntegers) {
  v1::GetStatsResponse s;
  s.set_lookups(UINT64_MAX);
  Parsed p = Parse(FormatPrometheus(s));
  EXPECT_EQ(p.samples["poshd_lookups_total"], "18446744073709551615");
}

// The daemon's histogram, through the same FillStats as GetStats: bucket i counts
// upper[i-1] < ms <= upper[i], which is exactly Prometheus' le.
TEST(Prometheus, DaemonHistogramThroughFillStats) {
  server::EventLoop loop;
  cache::Store store(16);
  SystemClock clock;
  server::PoshService service(loop, store, clock, server::ServiceOptions{},
                              [](uv_loop_t*) { return std::unique_ptr<fetch::Fetcher>(); });
  auto& st = service.stats();
  for (double ms : {0.0, 1.0, 1.5, 2.0, 999.0, 1000.0, 1001.0, 10000.0, 10001.0, 1e9}) {
    st.retrieval_latency.Record(ms);
  }
  st.lookups = 7;
  st.cache_hits = 4;
  v1::GetStatsResponse s;
  server::FillStats(service, &s);
  Parsed p = Parse(FormatPrometheus(s));
  const std::string b = std::string(kHist) + "_bucket";
  EXPECT_EQ(p.samples[b + "{le=\"0.001\"}"], "2");  // 0 and 1 ms
  EXPECT_EQ(p.samples[b + "{le=\"0.002\"}"], "4");  // + 1.5, 2
  EXPECT_EQ(p.samples[b + "{le=\"0.5\"}"], "4");
  EXPECT_EQ(p.samples[b + "{le=\"1\"}"], "6");   // + 999, 1000
  EXPECT_EQ(p.samples[b + "{le=\"2\"}"], "7");   // + 1001
  EXPECT_EQ(p.samples[b + "{le=\"10\"}"], "8");  // + 10000
  EXPECT_EQ(p.samples[b + "{le=\"+Inf\"}"], "10");
  EXPECT_EQ(p.samples[std::string(kHist) + "_count"], "10");
  EXPECT_DOUBLE_EQ(std::stod(p.samples[std::string(kHist) + "_sum"]),
                   (0 + 1 + 1.5 + 2 + 999 + 1000 + 1001 + 10000 + 10001 + 1e9) / 1000);
  EXPECT_EQ(p.samples["poshd_lookups_total"], "7");
  EXPECT_EQ(p.samples["poshd_cache_hits_total"], "4");
  // Every bucket of the daemon is there: its 13 bounds and +Inf.
  size_t buckets = 0;
  for (const auto& [name, v] : p.samples) buckets += name.rfind(b, 0) == 0;
  EXPECT_EQ(buckets, server::LatencyHistogram::kUpperMs.size());
}

}  // namespace
}  // namespace posh::metrics
