#include "core/document.h"

#include <simdjson.h>

#include <algorithm>

#include "core/base64.h"
#include "core/url.h"

namespace posh::core {
namespace {

namespace dom = simdjson::dom;

constexpr size_t kMaxDepth = 32;

// Non-throwing accessors: callers check el.type() first.
dom::array AsArray(const dom::element& el) { return el.get_array().value_unsafe(); }
dom::object AsObject(const dom::element& el) { return el.get_object().value_unsafe(); }
std::string_view AsString(const dom::element& el) { return el.get_string().value_unsafe(); }

Unexpected<Error> DocError(int code, std::string msg) { return Fail(Error{code, std::move(msg)}); }

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += "; ";
    out += p;
  }
  return out;
}

// Looks up `name` in `obj`; the first occurrence wins (duplicates are ignored).
bool Member(const dom::object& obj, std::string_view name, dom::element* out) {
  for (auto field : obj) {
    if (field.key == name) {
      *out = field.value;
      return true;
    }
  }
  return false;
}

// R10/R11: expires is a JSON integer >= 0; 0 means "invalid material".
// `what` names the document kind for messages.
Result<int64_t> ParseExpires(const dom::element& el, std::string_view what) {
  std::string prefix = std::string(what) + ": \"expires\" ";
  switch (el.type()) {
    case dom::element_type::INT64: {
      int64_t v = el.get_int64().value_unsafe();
      if (v < 0)
        return DocError(kDocBadExpires, prefix + "is negative (" + std::to_string(v) + ")");
      if (v == 0) return DocError(kDocExpiresZero, prefix + "is 0: the material is invalid");
      return v;
    }
    case dom::element_type::UINT64:
      return DocError(kDocBadExpires, prefix + "is too large");
    case dom::element_type::DOUBLE:
      return DocError(kDocBadExpires, prefix + "must be an integer number of seconds");
    default:
      return DocError(kDocBadExpires, prefix + "must be a number");
  }
}

Result<int64_t> RequiredExpires(const dom::object& obj, std::string_view what) {
  dom::element el;
  if (!Member(obj, "expires", &el))
    return DocError(kDocBadExpires, std::string(what) + ": \"expires\" is missing");
  return ParseExpires(el, what);
}

// ---- R10 -------------------------------------------------------------------------------

Result<Document> ParseFingerprints(const dom::object& root, const dom::element& fps) {
  if (fps.type() != dom::element_type::ARRAY)
    return DocError(kDocBadStructure, "fingerprints document: \"fingerprints\" must be an array");
  dom::array arr = AsArray(fps);
  if (arr.size() == 0)
    return DocError(kDocNoUsableKey, "fingerprints document: \"fingerprints\" is an empty array");
  auto expires = RequiredExpires(root, "fingerprints document");
  if (!expires.ok()) return Fail(expires.error());

  FingerprintsDocument doc;
  doc.expires = *expires;
  std::vector<std::string> problems;
  size_t index = 0;
  for (dom::element entry : arr) {
    std::string where = "descriptor " + std::to_string(index++);
    if (entry.type() != dom::element_type::OBJECT)
      return DocError(kDocBadStructure, "fingerprints document: " + where + " is not an object");
    Descriptor d;
    bool trusted = false;
    std::vector<std::string> why;
    for (auto field : AsObject(entry)) {
      auto alg = HashAlgFromName(field.key);
      if (!alg) continue;  // unknown names are ignored (R10)
      std::string name(field.key);
      if (std::any_of(d.fingerprints.begin(), d.fingerprints.end(),
                      [&](const Fingerprint& f) { return f.alg == *alg; })) {
        continue;  // duplicate member: the first one wins
      }
      if (field.value.type() != dom::element_type::STRING) {
        why.push_back(name + " is not a string");
        continue;
      }
      std::string_view text = AsString(field.value);
      auto bytes = DecodeBase64(text, Base64Alphabet::kStandard);
      if (!bytes) {
        why.push_back(name + " is not valid base64");
        continue;
      }
      if (bytes->size() != HashAlgDigestSize(*alg)) {
        why.push_back(name + " decodes to " + std::to_string(bytes->size()) + " bytes, expected " +
                      std::to_string(HashAlgDigestSize(*alg)));
        continue;
      }
      if (HashAlgTrusted(*alg)) {
        trusted = true;
      } else {
        why.push_back(name + " is not trusted");
      }
      d.fingerprints.push_back(Fingerprint{*alg, std::move(*bytes)});
    }
    if (trusted) {
      doc.descriptors.push_back(std::move(d));
    } else {
      if (why.empty()) why.push_back("no known hash");
      std::string joined;
      for (const auto& w : why) joined += (joined.empty() ? "" : ", ") + w;
      problems.push_back(where + ": " + joined);
    }
  }
  if (doc.descriptors.empty())
    return DocError(kDocNoUsableKey, "no usable descriptor: " + Join(problems));
  return Document(std::move(doc));
}

// ---- R11 -------------------------------------------------------------------------------

Result<Document> ParseReference(const dom::object& root, const dom::element& url_el) {
  auto bad = [](std::string msg) { return DocError(kDocBadUrl, "reference document: " + msg); };
  if (url_el.type() != dom::element_type::STRING) return bad("\"url\" must be a string");
  std::string_view url = AsString(url_el);
  if (url.empty()) return bad("\"url\" is empty");
  auto parsed = ParseStrictAbsoluteUrl(url);
  if (!parsed) {
    std::string why = "\"url\" ";
    why += parsed.error().message;
    return bad(std::move(why));
  }
  if (parsed->scheme != "https") return bad("\"url\" must use https");
  auto expires = RequiredExpires(root, "reference document");
  if (!expires.ok()) return Fail(expires.error());
  ReferenceDocument doc;
  doc.url = std::string(url);
  doc.expires = *expires;
  return Document(std::move(doc));
}

// ---- R12 -------------------------------------------------------------------------------

std::optional<std::vector<uint8_t>> DecodeUrlInteger(const dom::object& key, std::string_view name,
                                                     std::string* why) {
  dom::element el;
  if (!Member(key, name, &el)) {
    *why = "missing \"" + std::string(name) + "\"";
    return std::nullopt;
  }
  if (el.type() != dom::element_type::STRING) {
    *why = "\"" + std::string(name) + "\" is not a string";
    return std::nullopt;
  }
  auto bytes = DecodeBase64(AsString(el), Base64Alphabet::kUrl);
  if (!bytes) {
    *why = "\"" + std::string(name) + "\" is not valid base64url";
    return std::nullopt;
  }
  return bytes;
}

std::vector<uint8_t> StripZeros(std::vector<uint8_t> v) {
  size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i));
  return v;
}

size_t FieldSize(std::string_view crv) {
  if (crv == "P-256") return 32;
  if (crv == "P-384") return 48;
  if (crv == "P-521") return 66;
  return 0;
}

// Reads the key parameters of `kty` when any is present. Returns false (with *why) when they
// are present but malformed; *params stays empty when none is present.
bool ReadParams(const dom::object& key, std::string_view kty, std::optional<PublicKey>* params,
                std::string* why) {
  dom::element ignored;
  if (kty == "RSA") {
    if (!Member(key, "n", &ignored) && !Member(key, "e", &ignored)) return true;
    auto n = DecodeUrlInteger(key, "n", why);
    if (!n) return false;
    auto e = DecodeUrlInteger(key, "e", why);
    if (!e) return false;
    PublicKey pk;
    pk.type = PublicKey::Type::kRsa;
    pk.a = StripZeros(std::move(*n));
    pk.b = StripZeros(std::move(*e));
    if (pk.a.empty() || pk.b.empty()) {
      *why = "RSA \"n\" or \"e\" is zero";
      return false;
    }
    *params = std::move(pk);
    return true;
  }
  if (kty == "EC") {
    if (!Member(key, "crv", &ignored) && !Member(key, "x", &ignored) && !Member(key, "y", &ignored))
      return true;
    dom::element crv_el;
    if (!Member(key, "crv", &crv_el) || crv_el.type() != dom::element_type::STRING) {
      *why = "EC key without a \"crv\" string";
      return false;
    }
    std::string crv(AsString(crv_el));
    size_t size = FieldSize(crv);
    if (size == 0) {
      *why = "unsupported curve \"" + crv + "\"";
      return false;
    }
    auto x = DecodeUrlInteger(key, "x", why);
    if (!x) return false;
    auto y = DecodeUrlInteger(key, "y", why);
    if (!y) return false;
    auto xs = StripZeros(std::move(*x));
    auto ys = StripZeros(std::move(*y));
    if (xs.size() > size || ys.size() > size) {
      *why = "EC coordinates too long for " + crv;
      return false;
    }
    xs.insert(xs.begin(), size - xs.size(), 0);
    ys.insert(ys.begin(), size - ys.size(), 0);
    PublicKey pk;
    pk.type = PublicKey::Type::kEc;
    pk.curve = crv;
    pk.a = std::move(xs);
    pk.b = std::move(ys);
    *params = std::move(pk);
  }
  return true;  // other key types: no parameters POSH can compare
}

JwkKey ParseJwkKey(const dom::element& el, int64_t now) {
  JwkKey k;
  auto unusable = [&k](std::string why) {
    k.usable = false;
    k.unusable_reason = std::move(why);
    return k;
  };
  if (el.type() != dom::element_type::OBJECT) return unusable("not a JSON object");
  dom::object key = AsObject(el);
  dom::element v;
  if (Member(key, "kid", &v) && v.type() == dom::element_type::STRING) k.kid = AsString(v);
  if (!Member(key, "kty", &v) || v.type() != dom::element_type::STRING)
    return unusable("missing \"kty\"");
  k.kty = AsString(v);

  std::string why;
  if (!ReadParams(key, k.kty, &k.params, &why)) return unusable(why);

  dom::element x5c;
  if (Member(key, "x5c", &x5c)) {
    if (x5c.type() != dom::element_type::ARRAY) return unusable("\"x5c\" is not an array");
    dom::array chain = AsArray(x5c);
    if (chain.size() == 0) return unusable("\"x5c\" is empty");
    dom::element first = chain.at(0).value_unsafe();
    if (first.type() != dom::element_type::STRING) return unusable("x5c[0] is not a string");
    auto der = DecodeBase64(AsString(first), Base64Alphabet::kStandard);
    if (!der) return unusable("x5c[0] is not valid base64");
    auto cert = ParseCertificateDer(*der);
    if (!cert.ok()) return unusable("x5c[0] is not a certificate: " + cert.error().message);
    k.cert = std::move(cert.value());
    if (k.params && !(*k.params == k.cert->public_key))
      return unusable("key parameters do not match the x5c[0] certificate's public key");
    // A certificate not yet valid stays usable: the seed draft (§7) publishes the next key
    // ahead of the roll-over. The matcher only accepts it from notBefore on (R14).
    if (now > k.cert->not_after)
      return unusable("certificate expired " + FormatTime(k.cert->not_after));
  } else if (!k.params) {
    return unusable("neither \"x5c\" nor usable key parameters");
  }
  k.usable = true;
  return k;
}

Result<Document> ParseJwkSet(const dom::object& root, const dom::element& keys_el, int64_t now) {
  if (keys_el.type() != dom::element_type::ARRAY)
    return DocError(kDocBadStructure, "JWK Set: \"keys\" must be an array");
  dom::array keys = AsArray(keys_el);
  if (keys.size() == 0) return DocError(kDocNoUsableKey, "JWK Set: \"keys\" is an empty array");
  JwkSet set;
  dom::element exp;
  if (Member(root, "expires", &exp)) {
    auto e = ParseExpires(exp, "JWK Set");
    if (!e.ok()) return Fail(e.error());
    set.expires = *e;
  }
  std::vector<std::string> problems;
  bool any = false;
  size_t index = 0;
  for (dom::element el : keys) {
    JwkKey k = ParseJwkKey(el, now);
    if (k.usable) {
      any = true;
    } else {
      problems.push_back("key " + std::to_string(index) +
                         (k.kid.empty() ? "" : " (kid " + k.kid + ")") + ": " + k.unusable_reason);
    }
    ++index;
    set.keys.push_back(std::move(k));
  }
  if (!any) return DocError(kDocNoUsableKey, "no usable key: " + Join(problems));
  return Document(std::move(set));
}

}  // namespace

Result<Document> ParseDocument(std::string_view body, int64_t now) {
  dom::parser parser;
  if (parser.allocate(std::max<size_t>(body.size(), 64), kMaxDepth) != simdjson::SUCCESS)
    return DocError(kDocNotJson, "document too large to parse");
  simdjson::padded_string padded(body.data(), body.size());
  dom::element root_el;
  auto err = parser.parse(padded).get(root_el);
  if (err != simdjson::SUCCESS) {
    switch (err) {
      case simdjson::DEPTH_ERROR:
        return DocError(kDocNotJson, "JSON nested deeper than " + std::to_string(kMaxDepth));
      case simdjson::UTF8_ERROR:
        return DocError(kDocNotJson, "document is not valid UTF-8");
      case simdjson::EMPTY:
        return DocError(kDocNotJson, "document is empty");
      default:
        return DocError(kDocNotJson,
                        std::string("malformed JSON: ") + simdjson::error_message(err));
    }
  }
  if (root_el.type() != dom::element_type::OBJECT)
    return DocError(kDocNotJson, "document is not a JSON object");
  dom::object root = AsObject(root_el);
  dom::element fps, url, keys;
  bool has_fps = Member(root, "fingerprints", &fps);
  bool has_url = Member(root, "url", &url);
  bool has_keys = Member(root, "keys", &keys);
  int kinds = int{has_fps} + int{has_url} + int{has_keys};
  if (kinds == 0)
    return DocError(
        kDocBadKind,
        "document has none of \"fingerprints\", \"url\" or \"keys\": not a POSH document");
  if (kinds > 1) {
    std::string names;
    if (has_fps) names += "\"fingerprints\"";
    if (has_url) names += std::string(names.empty() ? "" : " and ") + "\"url\"";
    if (has_keys) names += std::string(names.empty() ? "" : " and ") + "\"keys\"";
    return DocError(kDocBadKind, "document has both " + names + ": ambiguous");
  }
  if (has_fps) return ParseFingerprints(root, fps);
  if (has_url) return ParseReference(root, url);
  return ParseJwkSet(root, keys, now);
}

}  // namespace posh::core
