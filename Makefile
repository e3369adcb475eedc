# pg_trickle — PGXS build of a C++ PostgreSQL extension.
#   make PG_CONFIG=/path/to/pg_config && make PG_CONFIG=... install
EXTENSION = pg_trickle
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pg_trickle.control)
MODULE_big = pg_trickle

SRCS = $(sort $(wildcard src/*.cpp src/*/*.cpp))
OBJS = $(SRCS:.cpp=.o)
DATA = $(wildcard sql/pg_trickle--*.sql)

REGRESS = $(shell sed -n 's/^test: *//p' test/regress/schedule)
REGRESS_OPTS = --inputdir=test/regress --outputdir=test/regress/results \
	--temp-instance=test/regress/tmp_check --temp-config=test/regress/regress.conf
EXTRA_CLEAN = $(SRCS:.cpp=.d) test/regress/results test/regress/tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

PG_MAJOR := $(shell $(PG_CONFIG) --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
ifneq ($(PG_MAJOR),18)
$(error pg_trickle needs PostgreSQL 18 (pg_config $(PG_CONFIG) reports $(PG_MAJOR)))
endif

# Server headers as system headers: their own warnings stay out of -Wall -Wextra.
PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) -DPGT_VERSION='"$(EXTVERSION)"'
PG_CXXFLAGS = -std=gnu++20 -Wall -Wextra -Wno-register -Wno-missing-field-initializers -MMD -MP \
	-fvisibility=hidden -fvisibility-inlines-hidden
ifdef PGT_WERROR
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK += -lstdc++

include $(PGXS)

# With an LLVM-enabled server, PGXS also emits bitcode; give that rule our C++ flags too.
COMPILE.cxx.bc += $(PG_CXXFLAGS)

-include $(SRCS:.cpp=.d)
