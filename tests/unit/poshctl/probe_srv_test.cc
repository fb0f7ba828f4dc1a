// poshctl probe: SRV target order (RFC 2782 priority and weight, XEP-0368 merge).
#include "probe_srv.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace posh::ctl::probe {
namespace {

SrvRecord Rec(const char* target, uint16_t prio, uint16_t weight, bool direct = false) {
  SrvRecord r;
  r.target = target;
  r.port = direct ? 5270 : 5269;
  r.priority = prio;
  r.weight = weight;
  r.direct_tls = direct;
  return r;
}

std::vector<std::string> Targets(const std::vector<SrvRecord>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.target);
  return out;
}

// Always the smallest allowed number: the first candidate by running sum.
uint32_t Lowest(uint32_t) { return 0; }
// Always the largest: the last candidate with a non-zero weight.
uint32_t Highest(uint32_t max) { return max; }

TEST(ProbeSrv, PriorityAscendsWhateverTheWeights) {
  auto out = OrderSrv({Rec("c", 30, 100), Rec("a", 10, 0), Rec("b", 20, 65535)}, {}, Highest);
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ProbeSrv, ZeroWeightComesFirstWithinPriorityWhenRandomIsZero) {
  // RFC 2782: zero-weight records are listed first, so a random 0 selects them.
  auto out = OrderSrv({Rec("heavy", 10, 50), Rec("zero", 10, 0)}, {}, Lowest);
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"zero", "heavy"}));
}

TEST(ProbeSrv, RandomAtTheTopPicksByRunningSum) {
  // Weights 10 and 30: running sums 10, 40. A random 40 selects the second.
  auto out = OrderSrv({Rec("w10", 5, 10), Rec("w30", 5, 30)}, {}, Highest);
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"w30", "w10"}));
  // A random 10 (<= first running sum) selects the first.
  out = OrderSrv({Rec("w10", 5, 10), Rec("w30", 5, 30)}, {},
                 [](uint32_t max) { return max == 40 ? 10u : 0u; });
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"w10", "w30"}));
}

TEST(ProbeSrv, WeightsAreHonouredStatistically) {
  std::mt19937 gen(42);
  auto rnd = [&gen](uint32_t max) { return std::uniform_int_distribution<uint32_t>(0, max)(gen); };
  std::map<std::string, int> first;
  for (int i = 0; i < 4000; ++i) {
    first[OrderSrv({Rec("w1", 1, 1), Rec("w9", 1, 9)}, {}, rnd)[0].target]++;
  }
  // RFC 2782 draws from [0, sum] inclusive: w9 is first for 9 of the 11 draws (3273
  // expected, sd ~25); a selection that ignored weights would give ~2000.
  EXPECT_GT(first["w9"], 3100);
  EXPECT_LT(first["w9"], 3450);
}

TEST(ProbeSrv, DirectTlsFirstOnATieOfPriorityAndZeroWeight) {
  auto out = OrderSrv({Rec("starttls", 10, 0)}, {Rec("direct", 10, 0, true)}, Lowest);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].target, "direct");
  EXPECT_TRUE(out[0].direct_tls);
  EXPECT_EQ(out[0].port, 5270);
  EXPECT_FALSE(out[1].direct_tls);
}

TEST(ProbeSrv, MergedListsAreOrderedByPriorityAcrossKinds) {
  auto out = OrderSrv({Rec("s1", 1, 0), Rec("s3", 3, 0)}, {Rec("d2", 2, 0, true)}, Lowest);
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"s1", "d2", "s3"}));
}

TEST(ProbeSrv, DotMeansNotOfferedAndIsNeverATarget) {
  EXPECT_TRUE(SaysNotOffered({Rec(".", 0, 0)}));
  EXPECT_FALSE(SaysNotOffered({Rec(".", 0, 0), Rec("x", 0, 0)}));
  EXPECT_FALSE(SaysNotOffered({}));
  auto out = OrderSrv({Rec(".", 0, 0)}, {Rec("direct", 0, 0, true)}, Lowest);
  EXPECT_EQ(Targets(out), (std::vector<std::string>{"direct"}));
}

TEST(ProbeSrv, MisbehavingRandomSourceStaysInRange) {
  auto out = OrderSrv({Rec("a", 1, 1), Rec("b", 1, 1)}, {}, [](uint32_t) { return 1000u; });
  EXPECT_EQ(out.size(), 2u);
}

}  // namespace
}  // namespace posh::ctl::probe
