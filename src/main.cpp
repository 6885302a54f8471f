// SPDX-License-Identifier: Apache-2.0
// wsrelay: wiring only. Command line -> config -> listeners -> Server -> run loop -> exit status.
//
// Exit status: 0 after a clean shutdown (or a successful --check-config), 2 for a usage or
// configuration error, 1 for any other startup failure (a port in use, no permission...).

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/link.h"
#include "config/config.h"
#include "daemon/journal.h"
#include "daemon/notify.h"
#include "daemon/signals.h"
#include "daemon/supervisor.h"
#include "io/event_loop.h"
#include "io/listener.h"
#include "io/tls_context.h"
#include "relay/server.h"
#include "util/address.h"
#include "util/log.h"

#ifndef WSRELAY_VERSION
#define WSRELAY_VERSION "0.0.0"
#endif

namespace {

using namespace wsrelay;

constexpr const char* kDefaultConfigPath = "/etc/wsrelay/wsrelay.toml";

constexpr const char* kUsage =
    "Usage: wsrelay [--config FILE] [--listen ADDR:PORT]... [--check-config] [--version] [--help]\n"
    "\n"
    "WebSocket relay server: every message a client sends to a room (the URL path) reaches every\n"
    "member of that room. Serves the chat page at / on the same port.\n"
    "\n"
    "  -c, --config FILE    read FILE (default: /etc/wsrelay/wsrelay.toml if it exists,\n"
    "                       otherwise the embedded defaults: ws://127.0.0.1:8080)\n"
    "  -l, --listen ADDR    listen on ADDR (\"0.0.0.0:8080\", \"[::1]:8080\"); repeatable;\n"
    "                       replaces the [[listen]] entries of the config\n"
    "  -t, --check-config   validate the configuration, print the listen addresses, exit 0 or 2\n"
    "  -V, --version        print the version and exit\n"
    "  -h, --help           print this help and exit\n"
    "\n"
    "Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT shut down gracefully (close 1001).\n"
    "See wsrelay(8) and wsrelay.toml(5).\n";

struct Options {
    std::optional<std::string> config_path;
    std::vector<std::string> listen;
    bool check = false;
};

// Returns nullopt after printing usage/version (exit code in `exit_code`).
std::optional<Options> parse_args(int argc, char** argv, int& exit_code) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) -> std::optional<std::string> {
            const std::string eq = std::string(name) + "=";
            if (a.rfind(eq, 0) == 0) return a.substr(eq.size());
            if (i + 1 < argc) return std::string(argv[++i]);
            std::fprintf(stderr, "wsrelay: %s needs a value\n%s", name, kUsage);
            exit_code = 2;
            return std::nullopt;
        };
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            exit_code = 0;
            return std::nullopt;
        } else if (a == "-V" || a == "--version") {
            std::printf("wsrelay %s\n", WSRELAY_VERSION);
            exit_code = 0;
            return std::nullopt;
        } else if (a == "-t" || a == "--check-config") {
            o.check = true;
        } else if (a == "-c" || a == "--config" || a.rfind("--config=", 0) == 0) {
            auto v = value("--config");
            if (!v) break;
            o.config_path = *v;
        } else if (a == "-l" || a == "--listen" || a.rfind("--listen=", 0) == 0) {
            auto v = value("--listen");
            if (!v) break;
            o.listen.push_back(*v);
        } else {
            std::fprintf(stderr, "wsrelay: unknown option '%s'\n%s", a.c_str(), kUsage);
            exit_code = 2;
            return std::nullopt;
        }
        continue;
    }
    if (exit_code == -1) return o;
    return std::nullopt;
}

// The config from the file (or the embedded defaults), with --listen applied. Empty on error,
// after printing it.
std::optional<config::Config> load(const Options& opts, std::string& error) {
    config::LoadResult r;
    if (opts.config_path) {
        r = config::load_config_file(*opts.config_path);
    } else if (::access(kDefaultConfigPath, F_OK) == 0) {
        r = config::load_config_file(kDefaultConfigPath);
    } else {
        r.ok = true;
        r.config = config::default_config();
    }
    if (!r.ok) {
        error = r.error;
        return std::nullopt;
    }
    config::Config c = std::move(r.config);
    if (!opts.listen.empty()) {
        c.listen.clear();
        c.explicit_listen = true;
        for (const std::string& text : opts.listen) {
            const auto a = util::parse_socket_address(text);
            if (!a) {
                error = "--listen " + text + ": expected \"IPv4:port\" or \"[IPv6]:port\"";
                return std::nullopt;
            }
            config::Listen l;
            l.address = text;
            l.socket_address = *a;
            c.listen.push_back(std::move(l));
        }
    }
    if (c.cluster.enabled()) {
        c.cluster.password = c.cluster.url_password;
        if (!c.cluster.password_file.empty()) {
            // Its first line, without the newline; the file should be readable by the service only.
            std::ifstream in(c.cluster.password_file);
            if (!in || !std::getline(in, c.cluster.password)) {
                error = c.source + ": cluster.password_file: cannot read \"" + c.cluster.password_file + "\"" +
                        (errno ? std::string(" (") + std::strerror(errno) + ")" : std::string());
                return std::nullopt;
            }
            if (!c.cluster.password.empty() && c.cluster.password.back() == '\r') c.cluster.password.pop_back();
        }
    }
    if (!c.www_root.empty()) {
        struct stat st{};
        if (::stat(c.www_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            error = c.source + ": server.www_root: \"" + c.www_root + "\" is not a directory" +
                    (errno ? std::string(" (") + std::strerror(errno) + ")" : std::string());
            return std::nullopt;
        }
    }
    return c;
}

// Sockets from the service manager when socket-activated, otherwise bound from the config.
// A passed socket is matched to a [[listen]] entry by its FileDescriptorName= (`name`), or else
// by its address; that entry says whether it speaks TLS. With no [[listen]] in the config at all,
// every passed socket is plain ws.
// `reuse_port`: bound with SO_REUSEPORT (workers), so that each worker can get a socket of its own.
std::vector<relay::ListenSocket> open_listeners(const config::Config& c, bool explicit_listen, bool reuse_port) {
    std::vector<relay::ListenSocket> out;
    auto inherited = io::inherited_sockets();
    if (!inherited.empty()) {
        std::vector<bool> used(c.listen.size(), false);
        for (auto& s : inherited) {
            const std::string addr = io::local_address_of(s.fd.get());
            util::SocketAddress actual;
            actual.length = sizeof actual.storage;
            ::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&actual.storage), &actual.length);
            bool tls = false, metrics = false, api = false, matched = !explicit_listen;
            for (size_t i = 0; i < c.listen.size() && explicit_listen; ++i) {
                const config::Listen& l = c.listen[i];
                const bool by_name = !l.name.empty() && l.name == s.name;
                const bool by_addr = l.name.empty() && util::address_covers(l.socket_address, actual);
                if (!used[i] && (by_name || by_addr)) {
                    used[i] = matched = true;
                    tls = l.tls;
                    metrics = l.metrics;
                    api = l.api;
                    break;
                }
            }
            if (!matched)
                throw std::runtime_error("socket activation: passed socket " + addr + " (FileDescriptorName=" + s.name +
                                         ") matches no [[listen]] entry by name or address");
            out.push_back({std::move(s.fd), addr, tls, metrics, false, api});
        }
        for (size_t i = 0; i < used.size() && explicit_listen; ++i)
            if (!used[i])
                throw std::runtime_error("socket activation: [[listen]] " + c.listen[i].address +
                                         (c.listen[i].name.empty() ? "" : " (name \"" + c.listen[i].name + "\")") +
                                         " got no socket from the service manager");
        return out;
    }
    for (const config::Listen& l : c.listen) {
        io::UniqueFd fd = io::bind_listener(l.socket_address, reuse_port);
        const std::string addr = io::local_address_of(fd.get());
        out.push_back({std::move(fd), addr, l.tls, l.metrics, false, l.api});
    }
    return out;
}

io::TlsSettings tls_settings(const config::Config& c) {
    io::TlsSettings s;
    s.certificates.push_back({"", c.tls.certificate, c.tls.private_key});
    for (const auto& e : c.tls.sni) s.certificates.push_back({e.server_name, e.certificate, e.private_key});
    s.min_version = c.tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    s.ciphers = c.tls.ciphers;
    s.ciphersuites = c.tls.ciphersuites;
    s.session_tickets = c.tls.session_tickets;
    return s;
}

// Loads the certificates when a listener needs them. Returns false (with `error`) on a bad one.
bool load_tls(const config::Config& c, std::shared_ptr<io::TlsContexts>& out, std::string& error) {
    out.reset();
    if (!c.any_tls()) return true;
    out = io::TlsContexts::load(tls_settings(c), error);
    if (!out) error = c.source + ": [tls]: " + error;
    return out != nullptr;
}

// [auth] and [api] keys from their files. At start (running == null) a file that cannot be read is
// an error; on reload the running keys of that kind stay, logged.
std::shared_ptr<const relay::Credentials> load_credentials(const config::Config& c, const relay::Credentials* running,
                                                          std::string& error) {
    auto cred = std::make_shared<relay::Credentials>();
    std::string why;
    if (!relay::load_token_keys(c, *cred, why)) {
        if (!running) {
            error = c.source + ": [auth]: " + why;
            return nullptr;
        }
        WSLOG_ERR("auth: keeping the previous keys: %s", why.c_str());
        cred->tokens = running->tokens;
    }
    if (!relay::load_api_keys(c, *cred, why)) {
        if (!running) {
            error = c.source + ": api.key_file: " + why;
            return nullptr;
        }
        WSLOG_ERR("api: keeping the previous keys: %s", why.c_str());
        cred->api_keys = running->api_keys;
    }
    return cred;
}

std::string status_line(relay::Server& s, double messages_per_s = 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", messages_per_s);
    std::string line = std::to_string(s.hub().member_count()) + " WebSocket connections (" +
                       std::to_string(s.open_connections()) + " in all), " + std::to_string(s.hub().room_count()) +
                       " rooms, " + rate + " messages/s in";
    if (s.stats().cluster) line += s.stats().cluster_up ? ", cluster link up" : ", cluster link DOWN";
    if (!s.stats().worker.empty()) {
        // A worker's STATUS= goes to the main process, which sums these figures for systemd.
        line += '\n';
        line += daemon::kStatsField;
        line += std::to_string(s.hub().member_count()) + " " + std::to_string(s.open_connections()) + " " +
                std::to_string(s.hub().room_count()) + " " + rate + " " +
                (!s.stats().cluster ? "-" : s.stats().cluster_up ? "up" : "down");
    }
    return line;
}

// The sockets of each of `workers` workers. Where the kernel allows, each worker gets sockets of
// its own, bound with SO_REUSEPORT to the same addresses: the kernel spreads new connections
// evenly between them (a hash of the peer's address and port). Measured with 200 connections
// opened at once: one shared socket with EPOLLEXCLUSIVE gave all 200 to one worker (the one woken
// accepts until the backlog is empty), SO_REUSEPORT about half to each. A socket from systemd
// without ReusePort=yes, or one we cannot bind again (a port below 1024 without
// CAP_NET_BIND_SERVICE), is shared instead: every worker accepts on it, EPOLLEXCLUSIVE waking
// one per connection.
std::vector<std::vector<relay::ListenSocket>> worker_sockets(std::vector<relay::ListenSocket> listeners, uint32_t workers) {
    std::vector<std::vector<relay::ListenSocket>> out(workers);
    for (relay::ListenSocket& l : listeners) {
        std::vector<io::UniqueFd> siblings;
        std::string why;
        if (io::has_reuse_port(l.fd.get())) {
            try {
                for (uint32_t i = 1; i < workers; ++i) siblings.push_back(io::bind_sibling(l.fd.get()));
            } catch (const std::exception& e) {
                siblings.clear();
                why = e.what();
            }
        } else {
            why = "it has no SO_REUSEPORT, which systemd sets with ReusePort=yes";
        }
        if (!siblings.empty() || workers == 1) {
            for (uint32_t i = 0; i < workers; ++i)
                out[i].push_back({i == 0 ? std::move(l.fd) : std::move(siblings[i - 1]), l.address, l.tls, l.metrics, false, l.api});
            continue;
        }
        WSLOG_NOTICE("listener %s: one socket shared by the %u workers (%s)", l.address.c_str(), workers, why.c_str());
        for (uint32_t i = 0; i < workers; ++i) {
            io::UniqueFd copy(::fcntl(l.fd.get(), F_DUPFD_CLOEXEC, 3));
            if (!copy) throw std::runtime_error("listener " + l.address + ": dup: " + std::strerror(errno));
            out[i].push_back({std::move(copy), l.address, l.tls, l.metrics, true, l.api});
        }
    }
    return out;
}

// What of [cluster] a reload cannot change (the link keeps its connection and identity).
bool cluster_needs_restart(const config::Cluster& a, const config::Cluster& b) {
    return a.redis != b.redis || a.channel_prefix != b.channel_prefix || a.node_id != b.node_id ||
           a.max_pending_bytes != b.max_pending_bytes;
}

constexpr uint64_t kStatusIntervalMs = 5000;
// After SIGTERM the supervisor gives its workers shutdown_timeout and this much more to be gone.
constexpr uint64_t kDrainMarginMs = 5000;

}  // namespace

// One reactor on `listeners`: the whole service when workers = 1, else one worker (`worker` 1..N,
// forked by the supervisor, whose NOTIFY_SOCKET it talks to). Returns the exit status.
int run_reactor(const Options& opts, std::optional<config::Config> cfg, std::vector<relay::ListenSocket> listeners,
                std::shared_ptr<io::TlsContexts> tls, std::shared_ptr<const relay::Credentials> credentials,
                uint32_t worker) {
    try {
        io::EventLoop loop;
        relay::Server server(loop, *cfg, std::move(listeners), tls, std::move(credentials));
        if (worker) server.stats().worker = std::to_string(worker);
        // [cluster]: rooms shared through Redis. Declared after the server: it goes first.
        std::unique_ptr<cluster::RedisLink> link;
        if (cfg->cluster.enabled()) {
            link = std::make_unique<cluster::RedisLink>(server, loop, cfg->cluster, cfg->cluster.password);
            server.hub().set_backplane(link.get());
            server.add_periodic(cluster::RedisLink::kTickMs, [&] { link->tick(); });
        }
        daemon::Signals signals(loop, {
            [&](int signo) {
                daemon::notify_stopping("shutting down");
                server.begin_shutdown(signo == SIGINT ? "SIGINT" : "SIGTERM");
            },
            [&] {
                daemon::notify_reloading();
                std::string why;
                auto fresh = load(opts, why);
                std::shared_ptr<io::TlsContexts> fresh_tls;
                if (!fresh || !load_tls(*fresh, fresh_tls, why)) {
                    WSLOG_ERR("reload failed, keeping the running configuration and certificates: %s", why.c_str());
                } else {
                    const config::Cluster was = server.config().cluster;
                    if (cluster_needs_restart(was, fresh->cluster)) {
                        WSLOG_WARNING("reload: [cluster] redis, channel_prefix, node_id and max_pending_bytes change only on restart; keeping %s",
                                      was.enabled() ? ("redis " + was.endpoint()).c_str() : "no cluster");
                        fresh->cluster = was;  // what runs, until the restart
                    } else if (link) {
                        link->set_password(fresh->cluster.password);  // used from the next connection on
                    }
                    auto fresh_credentials = load_credentials(*fresh, &server.credentials(), why);
                    server.apply_config(std::move(*fresh), std::move(fresh_tls), std::move(fresh_credentials));
                    WSLOG_NOTICE("configuration reloaded from %s", server.config().source.c_str());
                }
                daemon::notify_ready(status_line(server));
            },
        });
        // STATUS= for `systemctl status`, refreshed from the loop's own timer.
        uint64_t last_messages = 0;
        server.add_periodic(kStatusIntervalMs, [&] {
            const uint64_t m = server.stats().messages_in;
            daemon::notify_status(status_line(server, static_cast<double>(m - last_messages) * 1000.0 / kStatusIntervalMs));
            last_messages = m;
        });
        if (const uint64_t every = daemon::watchdog_interval_ms()) server.add_periodic(every, [] { daemon::notify_watchdog(); });
        if (worker)
            WSLOG_NOTICE("wsrelay %s worker %u started (config: %s)", WSRELAY_VERSION, worker, cfg->source.c_str());
        else
            WSLOG_NOTICE("wsrelay %s started (config: %s)", WSRELAY_VERSION, cfg->source.c_str());
        daemon::notify_ready(status_line(server));
        return server.run();
    } catch (const std::exception& e) {
        WSLOG_ERR("wsrelay: %s", e.what());
        daemon::notify_failure(e.what(), errno);
        return 1;
    }
}

int main(int argc, char** argv) {
    int exit_code = -1;
    const auto opts = parse_args(argc, argv, exit_code);
    if (!opts) return exit_code;

    std::string error;
    auto cfg = load(*opts, error);
    if (!cfg) {
        WSLOG_ERR("wsrelay: %s", error.c_str());
        daemon::notify_failure(error, 0);
        return 2;
    }
    std::shared_ptr<io::TlsContexts> tls;
    if (!load_tls(*cfg, tls, error)) {
        WSLOG_ERR("wsrelay: %s", error.c_str());
        daemon::notify_failure(error, 0);
        return 2;
    }
    auto credentials = load_credentials(*cfg, nullptr, error);
    if (!credentials) {
        WSLOG_ERR("wsrelay: %s", error.c_str());
        daemon::notify_failure(error, 0);
        return 2;
    }
    if (opts->check) {
        for (const config::Listen& l : cfg->listen)
            std::printf("listen %s (%s%s%s)\n", l.address.c_str(), l.tls ? "wss" : "ws", l.name.empty() ? "" : ", name ",
                        l.name.c_str());
        if (cfg->cluster.enabled())
            std::printf("cluster redis %s (channels %sroom:<path>, node %s)\n", cfg->cluster.endpoint().c_str(),
                        cfg->cluster.channel_prefix.c_str(),
                        cfg->cluster.node_id.empty() ? "hostname:pid" : cfg->cluster.node_id.c_str());
        if (cfg->workers != 1)
            std::printf("workers %u%s\n", daemon::resolve_workers(cfg->workers), cfg->workers == 0 ? " (auto)" : "");
        if (cfg->auth.has_keys())
            std::printf("auth default %s, %s%zu public key(s)\n", cfg->auth.token_by_default ? "token" : "open",
                        credentials->tokens->has_hmac_secret() ? "an HS256 secret and " : "",
                        credentials->tokens->public_key_count());
        if (!cfg->api_key_file.empty()) std::printf("api %zu key(s)\n", credentials->api_keys.size());
        std::printf("%s: configuration is valid\n", cfg->source.c_str());
        return 0;
    }
    util::set_log_level(cfg->log_level);
    daemon::use_journal_if_connected();
    daemon::ignore_sigpipe();

    const uint32_t workers = daemon::resolve_workers(cfg->workers);
    std::vector<relay::ListenSocket> listeners;
    std::vector<std::vector<relay::ListenSocket>> per_worker;
    try {
        listeners = open_listeners(*cfg, cfg->explicit_listen, workers > 1);
        if (workers > 1) per_worker = worker_sockets(std::move(listeners), workers);
    } catch (const std::exception& e) {
        WSLOG_ERR("wsrelay: %s", e.what());
        daemon::notify_failure(e.what(), errno);
        return 1;
    }
    if (workers == 1)
        return run_reactor(*opts, std::move(cfg), std::move(listeners), std::move(tls), std::move(credentials), 0);

    try {
        daemon::Supervisor supervisor({
            .workers = workers,
            .drain_timeout_ms = cfg->shutdown_timeout_ms + kDrainMarginMs,
            .run_worker = [&](uint32_t index) {
                // In the forked worker: its own sockets; the others' copies are closed.
                std::vector<relay::ListenSocket> mine = std::move(per_worker[index - 1]);
                per_worker.clear();
                return run_reactor(*opts, std::move(cfg), std::move(mine), std::move(tls), std::move(credentials), index);
            },
            .reload = [&] {
                daemon::Supervisor::Reload r;
                auto fresh = load(*opts, r.error);
                std::shared_ptr<io::TlsContexts> fresh_tls;
                if (!fresh || !load_tls(*fresh, fresh_tls, r.error)) return r;
                r.ok = true;
                r.workers = daemon::resolve_workers(fresh->workers);
                r.drain_timeout_ms = fresh->shutdown_timeout_ms + kDrainMarginMs;
                // What a worker started from now on runs (the running ones reload the file
                // themselves): the new settings, but the sockets and the [cluster] identity of
                // the start, as a reload keeps them.
                fresh->listen = cfg->listen;
                fresh->explicit_listen = cfg->explicit_listen;
                if (cluster_needs_restart(cfg->cluster, fresh->cluster)) fresh->cluster = cfg->cluster;
                credentials = load_credentials(*fresh, credentials.get(), r.error);
                cfg = std::move(fresh);
                tls = std::move(fresh_tls);
                return r;
            },
        });
        // The main process keeps its copies of the sockets and the configuration for the workers
        // it starts later, but never accepts a connection itself.
        return supervisor.run();
    } catch (const std::exception& e) {
        WSLOG_ERR("wsrelay: %s", e.what());
        daemon::notify_failure(e.what(), errno);
        return 1;
    }
}
