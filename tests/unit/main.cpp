// SPDX-License-Identifier: Apache-2.0
// The Catch2 runner for wsrelay_unit_tests; the test cases live in the other files of tests/unit/.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
