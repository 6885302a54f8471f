// SPDX-License-Identifier: Apache-2.0
// Socket addresses as operators write them: "127.0.0.1:8080", "[::1]:443", "0.0.0.0:80".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wsrelay::util {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
    int family() const noexcept { return storage.ss_family; }
};

// Parses "IPv4:port" or "[IPv6]:port" (port 0-65535, numeric hosts only: no DNS at startup).
std::optional<SocketAddress> parse_socket_address(std::string_view text);

// Whether a socket bound to `actual` serves what `configured` asks for: the same port, and the same
// host, or a wildcard host on both sides ("0.0.0.0:80" is served by a dual-stack "[::]:80").
bool address_covers(const SocketAddress& configured, const SocketAddress& actual) noexcept;

// A peer's IP address without the port, IPv4 as IPv4-mapped IPv6: the key of per-IP limits.
struct IpKey {
    std::array<uint8_t, 16> bytes{};
    bool operator==(const IpKey&) const = default;
};
struct IpKeyHash {
    size_t operator()(const IpKey& k) const noexcept;
};
IpKey ip_key(const sockaddr* addr) noexcept;

// A peer's address as log text, formatted when a line is written rather than kept per
// connection: "1.2.3.4:80", "[::1]:80" (IPv4-mapped IPv6 shown as IPv4), "unix", or "?".
struct AddressText {
    char text[64] = "";  // empty: no address
    const char* c_str() const noexcept { return text; }
};
// From what a connection keeps: its IpKey, port and address family (AF_INET, AF_INET6, AF_UNIX).
AddressText format_peer(const IpKey& ip, uint16_t port, int family) noexcept;
uint16_t port_of(const sockaddr* addr) noexcept;  // 0 for a non-IP address

// "1.2.3.4:80" or "[::1]:80"; IPv4-mapped IPv6 addresses are shown as IPv4.
std::string format_socket_address(const sockaddr* addr, socklen_t length);
inline std::string format_socket_address(const SocketAddress& a) { return format_socket_address(a.get(), a.length); }

}  // namespace wsrelay::util
