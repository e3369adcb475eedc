// Included by every .cpp file in src/core (after its other includes): fails the build if a PostgreSQL header was included first.
#pragma once
#if defined(POSTGRES_H)
static_assert(false, "src/core must not include PostgreSQL headers");
#endif
