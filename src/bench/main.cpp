// SPDX-License-Identifier: Apache-2.0
// wsrelay-bench: wiring only. Command line -> Options -> TLS context -> Driver::run() -> report.
//
// Exit status: 0 when the run completed without errors, 1 when it failed or connections failed
// during it, 2 for a usage error.

#include <csignal>
#include <cstdio>
#include <exception>

#include "bench/driver.h"
#include "bench/options.h"
#include "bench/report.h"
#include "bench/tls_client.h"

int main(int argc, char** argv) {
    using namespace wsrelay::bench;
    // OpenSSL writes with plain write(): a peer that went away must be an error value, not a signal.
    std::signal(SIGPIPE, SIG_IGN);

    const ParseResult parsed = parse_options(argc, argv);
    if (!parsed.options) {
        std::fputs(parsed.message.c_str(), parsed.exit_code == 0 ? stdout : stderr);
        return parsed.exit_code;
    }
    const Options& options = *parsed.options;

    TlsClient tls;
    if (options.target.tls || (options.publisher_target && options.publisher_target->tls)) {
        std::string error;
        tls = TlsClient::create(options.insecure, options.cafile, error);
        if (!tls.ok()) {
            std::fprintf(stderr, "wsrelay-bench: TLS: %s\n", error.c_str());
            return 1;
        }
    }
    try {
        Driver driver(options, &tls);
        const Results results = driver.run();
        const std::string summary = format_summary(options, results);
        if (options.json) {
            std::fputs(summary.c_str(), stderr);
            std::printf("%s\n", format_json(options, results).c_str());
        } else {
            std::fputs(summary.c_str(), stdout);
        }
        return results.completed && results.errors == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wsrelay-bench: %s\n", e.what());
        return 1;
    }
}
