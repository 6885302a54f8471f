// SPDX-License-Identifier: Apache-2.0
// KeySet and load_keys(): the verification keys of [auth], from PEM text and from files.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "auth/openssl_ptr.h"
#include "auth/token.h"

namespace wsrelay::auth {

namespace {

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";
constexpr int kMinRsaBits = 2048;  // RFC 7518 §3.3: a key of 2048 bits or larger MUST be used
// Key files are a few KiB; the caps only stop a wrong path (a log, a device) from being slurped.
constexpr size_t kMaxSecretFileBytes = 64 * 1024;
constexpr size_t kMaxPemFileBytes = 1024 * 1024;

std::string ordinal(size_t n) {
    const char* suffix = "th";
    if (n % 100 < 11 || n % 100 > 13) {
        if (n % 10 == 1) suffix = "st";
        else if (n % 10 == 2) suffix = "nd";
        else if (n % 10 == 3) suffix = "rd";
    }
    return std::to_string(n) + suffix;
}

// What the key is, if it is one we accept; otherwise the reason, for the error message.
struct Classified {
    std::optional<Alg> alg;
    std::string why;
};

Classified classify(EVP_PKEY* pkey) {
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        const int bits = EVP_PKEY_get_bits(pkey);
        if (bits < kMinRsaBits)
            return {std::nullopt, "an RSA key of " + std::to_string(bits) + " bits (at least 2048 are needed)"};
        return {Alg::RS256, {}};
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[80] = {};
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1)
            return {std::nullopt, "an EC key with explicit curve parameters (only the named curve P-256 is accepted)"};
        if (OBJ_txt2nid(group) != NID_X9_62_prime256v1)
            return {std::nullopt, std::string("an EC key on curve ") + group + " (only P-256 is accepted)"};
        return {Alg::ES256, {}};
    }
    if (EVP_PKEY_is_a(pkey, "ED25519")) return {Alg::EdDSA, {}};
    const char* type = EVP_PKEY_get0_type_name(pkey);
    return {std::nullopt, std::string("a key of type ") + (type ? type : "unknown") +
                              " (RSA, EC P-256 and Ed25519 are accepted)"};
}

// The label of a PEM block starting at `begin` ("-----BEGIN <label>-----"), or "" if malformed.
std::string_view block_label(std::string_view text) {
    text.remove_prefix(kBegin.size());
    const size_t end = text.find(kDashes);
    if (end == std::string_view::npos) return {};
    const std::string_view label = text.substr(0, end);
    return label.find('\n') == std::string_view::npos ? label : std::string_view{};
}

// Reads at most `cap` bytes of `path`; on failure says why (errno text, or too large).
bool read_file(const std::string& path, size_t cap, std::string& out, std::string& why) {
    std::FILE* f = std::fopen(path.c_str(), "rbe");  // 'e': O_CLOEXEC, like every fd we open
    if (!f) {
        why = std::strerror(errno);
        return false;
    }
    out.clear();
    char buf[4096];
    bool ok = true;
    for (;;) {
        const size_t n = std::fread(buf, 1, sizeof buf, f);
        out.append(buf, n);
        if (out.size() > cap) {
            why = "larger than " + std::to_string(cap) + " bytes";
            ok = false;
            break;
        }
        if (n < sizeof buf) {
            if (std::ferror(f)) {
                why = std::strerror(errno);  // e.g. EISDIR: fopen() opens a directory, read() fails
                ok = false;
            }
            break;
        }
    }
    std::fclose(f);
    return ok;
}

}  // namespace

void KeySet::PkeyFree::operator()(evp_pkey_st* p) const noexcept { EVP_PKEY_free(p); }

KeySet::KeySet() = default;
KeySet::~KeySet() { wipe_secret(); }
KeySet::KeySet(KeySet&& o) noexcept : hmac_secret_(std::move(o.hmac_secret_)), keys_(std::move(o.keys_)) {
    o.hmac_secret_.clear();
}
KeySet& KeySet::operator=(KeySet&& o) noexcept {
    if (this != &o) {
        wipe_secret();
        hmac_secret_ = std::move(o.hmac_secret_);
        keys_ = std::move(o.keys_);
        o.hmac_secret_.clear();
    }
    return *this;
}

// The secret should not outlive its use in freed heap memory (a core dump, a later allocation).
void KeySet::wipe_secret() noexcept {
    if (!hmac_secret_.empty()) OPENSSL_cleanse(hmac_secret_.data(), hmac_secret_.size());
    hmac_secret_.clear();
}

void KeySet::set_hmac_secret(std::string secret) {
    wipe_secret();
    hmac_secret_ = std::move(secret);
}

bool KeySet::add_public_keys_pem(std::string_view pem, std::string& error) {
    std::vector<PublicKey> found;
    size_t pos = 0;
    for (size_t n = 1;; ++n) {
        const size_t begin = pem.find(kBegin, pos);
        if (begin == std::string_view::npos) break;
        const std::string_view label = block_label(pem.substr(begin));
        auto fail = [&](std::string why) {
            error = ordinal(n) + " key: " + why;
            ERR_clear_error();  // leave no stale entry for the next OpenSSL caller (TLS) to misread
            return false;
        };
        if (label.empty()) return fail("a broken PEM \"-----BEGIN\" line");
        const std::string end_line = std::string(kEnd).append(label).append(kDashes);
        const size_t end = pem.find(end_line, begin);
        if (end == std::string_view::npos) return fail("no \"" + end_line + "\" line");
        pos = end + end_line.size();
        if (label != "PUBLIC KEY") {
            if (label.find("PRIVATE KEY") != std::string_view::npos)
                return fail("a private key; give the public key (\"-----BEGIN PUBLIC KEY-----\")");
            return fail("a \"" + std::string(label) + "\" block, not a \"PUBLIC KEY\" (SubjectPublicKeyInfo)");
        }
        const std::string_view block = pem.substr(begin, pos - begin);
        BioPtr bio(BIO_new_mem_buf(block.data(), static_cast<int>(block.size())));
        if (!bio) return fail("out of memory");
        std::unique_ptr<EVP_PKEY, PkeyFree> pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
        if (!pkey) return fail("not a valid public key (bad base64 or DER)");
        Classified c = classify(pkey.get());
        if (!c.alg) return fail(std::move(c.why));
        found.push_back({*c.alg, std::move(pkey)});
    }
    if (found.empty()) {
        error = "no \"-----BEGIN PUBLIC KEY-----\" block";
        return false;
    }
    for (PublicKey& k : found) keys_.push_back(std::move(k));
    return true;
}

bool load_keys(const std::string& hmac_secret_file, const std::string& public_key_file, KeySet& out,
               std::string& error) {
    KeySet keys;
    std::string text, why;
    if (!hmac_secret_file.empty()) {
        if (!read_file(hmac_secret_file, kMaxSecretFileBytes, text, why)) {
            OPENSSL_cleanse(text.data(), text.size());
            error = hmac_secret_file + ": " + why;
            return false;
        }
        // The first line, without "\n" or "\r\n": a file written by `echo` or an editor works.
        std::string secret = text.substr(0, text.find('\n'));
        if (!secret.empty() && secret.back() == '\r') secret.pop_back();
        OPENSSL_cleanse(text.data(), text.size());
        if (secret.empty()) {
            error = hmac_secret_file + ": the first line (the HS256 secret) is empty";
            return false;
        }
        // RFC 7518 §3.2: an HS256 key shorter than the hash (32 bytes) is not allowed; a short
        // secret is one an attacker can guess offline from any token they hold.
        if (secret.size() < kMinHmacSecretBytes) {
            const size_t n = secret.size();
            OPENSSL_cleanse(secret.data(), secret.size());
            error = hmac_secret_file + ": the HS256 secret is " + std::to_string(n) + " bytes; at least " +
                    std::to_string(kMinHmacSecretBytes) + " are needed (RFC 7518 3.2), e.g. `openssl rand -base64 48`";
            return false;
        }
        keys.set_hmac_secret(std::move(secret));
    }
    if (!public_key_file.empty()) {
        if (!read_file(public_key_file, kMaxPemFileBytes, text, why)) {
            error = public_key_file + ": " + why;
            return false;
        }
        if (!keys.add_public_keys_pem(text, why)) {
            error = public_key_file + ": " + why;
            return false;
        }
    }
    out = std::move(keys);
    return true;
}

}  // namespace wsrelay::auth
