// SPDX-License-Identifier: Apache-2.0
#include "util/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace wsrelay::util {

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
    std::string host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
        host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
        host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535)
        return std::nullopt;

    SocketAddress a;
    if (text.front() == '[') {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
        if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) != 1) return std::nullopt;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<uint16_t>(port));
        a.length = sizeof(sockaddr_in6);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&a.storage);
        if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) != 1) return std::nullopt;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(static_cast<uint16_t>(port));
        a.length = sizeof(sockaddr_in);
    }
    return a;
}

namespace {
struct HostPort {
    bool v6;
    uint8_t host[16];
    uint16_t port;
    bool wildcard;
};
HostPort host_port(const SocketAddress& a) noexcept {
    HostPort h{};
    if (a.family() == AF_INET) {
        const auto* s4 = reinterpret_cast<const sockaddr_in*>(&a.storage);
        std::memcpy(h.host, &s4->sin_addr, 4);
        h.port = ntohs(s4->sin_port);
        h.wildcard = s4->sin_addr.s_addr == htonl(INADDR_ANY);
    } else {
        const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
        h.v6 = true;
        std::memcpy(h.host, &s6->sin6_addr, 16);
        h.port = ntohs(s6->sin6_port);
        h.wildcard = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
    }
    return h;
}
}  // namespace

size_t IpKeyHash::operator()(const IpKey& k) const noexcept {
    uint64_t a, b;
    std::memcpy(&a, k.bytes.data(), 8);
    std::memcpy(&b, k.bytes.data() + 8, 8);
    // A multiply-xorshift mix: peers choose their addresses, so spread every bit.
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    return static_cast<size_t>(h ^ (h >> 31));
}

IpKey ip_key(const sockaddr* addr) noexcept {
    IpKey k;
    if (addr->sa_family == AF_INET) {
        k.bytes[10] = k.bytes[11] = 0xFF;
        std::memcpy(k.bytes.data() + 12, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        std::memcpy(k.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    }
    return k;
}

bool address_covers(const SocketAddress& configured, const SocketAddress& actual) noexcept {
    const HostPort c = host_port(configured), a = host_port(actual);
    if (c.port != a.port) return false;
    if (c.wildcard && a.wildcard) return true;
    return c.v6 == a.v6 && std::memcmp(c.host, a.host, c.v6 ? 16 : 4) == 0;
}

AddressText format_peer(const IpKey& ip, uint16_t port, int family) noexcept {
    AddressText out;
    if (family == AF_UNIX) {
        std::snprintf(out.text, sizeof out.text, "unix");
        return out;
    }
    if (family != AF_INET && family != AF_INET6) {
        std::snprintf(out.text, sizeof out.text, "?");
        return out;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    const in6_addr* a6 = reinterpret_cast<const in6_addr*>(ip.bytes.data());
    if (IN6_IS_ADDR_V4MAPPED(a6)) {  // what ip_key() made of an IPv4 address, or an IPv4-mapped one
        inet_ntop(AF_INET, ip.bytes.data() + 12, host, sizeof host);
        std::snprintf(out.text, sizeof out.text, "%s:%u", host, static_cast<unsigned>(port));
    } else {
        inet_ntop(AF_INET6, a6, host, sizeof host);
        std::snprintf(out.text, sizeof out.text, "[%s]:%u", host, static_cast<unsigned>(port));
    }
    return out;
}

uint16_t port_of(const sockaddr* addr) noexcept {
    if (addr->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    if (addr->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    return 0;
}

std::string format_socket_address(const sockaddr* addr, socklen_t length) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (addr->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
        const auto* s4 = reinterpret_cast<const sockaddr_in*>(addr);
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    if (addr->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
        const auto* s6 = reinterpret_cast<const sockaddr_in6*>(addr);
        port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, reinterpret_cast<const uint8_t*>(&s6->sin6_addr) + 12, host, sizeof host);
            return std::string(host) + ":" + std::to_string(port);
        }
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    if (addr->sa_family == AF_UNIX) return "unix";
    return "?";
}

}  // namespace wsrelay::util
