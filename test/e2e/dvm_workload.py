"""Schema, query corpus and seeded random DML for the randomized differential tests
(test_dvm_random.py). Everything here is plain Python producing SQL text with literal values, so that
whatever ran can be printed as a self-contained reproduction script."""
import decimal
import os

# DML naming partitions of pt directly (not only its parent): off by default for now.
PARTITION_DML = os.environ.get("PGT_DVM_PARTITION_DML") == "1"
PARTITIONS = {"pt_lo": (0, 2), "pt_hi": (3, 5), "pt_rest": (6, 9)}  # region ranges used for direct DML

# ------------------------------------------------------------------------------------------------
# SQL literals
# ------------------------------------------------------------------------------------------------


def lit(v):
    """`v` as an SQL literal (None, bool, int, Decimal, str)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, decimal.Decimal)):
        return str(v)
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, (list, tuple)):
        return "ARRAY[" + ", ".join(lit(x) for x in v) + "]"
    raise TypeError(f"no literal for {type(v).__name__}: {v!r}")


def row_lit(row):
    return "(" + ", ".join(lit(v) for v in row) + ")"


def values_list(rows):
    return ", ".join(row_lit(r) for r in rows)


def same_row_predicate(columns, row):
    """A predicate matching exactly the rows equal to `row` (NULLs included)."""
    return " AND ".join(f"{c} IS NOT DISTINCT FROM {lit(v)}" for c, v in zip(columns, row))


# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------

SCHEMA_DDL = [
    # A small dimension table.
    "CREATE TABLE dim (d_id int PRIMARY KEY, label text NOT NULL, region text, weight int NOT NULL)",
    # Two tables with primary keys; int, bigint, numeric, text, boolean; most columns nullable.
    "CREATE TABLE t1 (id int PRIMARY KEY, g int, k bigint NOT NULL, qty int, amt numeric(12,2), name text, "
    "d_id int, flag boolean)",
    "CREATE TABLE t2 (id bigint PRIMARY KEY, t1_id int, g int, amount numeric, note text, d_id int)",
    # Keyless, duplicates common.
    "CREATE TABLE bag (k int, v int, s text)",
    # Declaratively partitioned (range on a nullable column: NULL goes to the default partition).
    "CREATE TABLE pt (id int NOT NULL, region int, val int, tag text) PARTITION BY RANGE (region)",
    "CREATE TABLE pt_lo PARTITION OF pt FOR VALUES FROM (MINVALUE) TO (3)",
    "CREATE TABLE pt_hi PARTITION OF pt FOR VALUES FROM (3) TO (6)",
    # A partition whose columns are in another order than the parent's (rows are converted on capture).
    "CREATE TABLE pt_rest (tag text, val int, region int, id int NOT NULL)",
    "ALTER TABLE pt ATTACH PARTITION pt_rest DEFAULT",
    # Dropped columns (first and in the middle): attribute numbers no longer match column positions.
    "CREATE TABLE wide (junk1 text, id int PRIMARY KEY, a int, junk2 int, b numeric, c text)",
    "ALTER TABLE wide DROP COLUMN junk1",
    "ALTER TABLE wide DROP COLUMN junk2",
    # A view over a join (stream tables may read views; they are expanded).
    "CREATE VIEW v_t1_dim AS SELECT a.id, a.g, a.amt, a.qty, d.label, d.region FROM t1 a JOIN dim d ON d.d_id = a.d_id",
]

TABLES = {
    # table: (columns, ORDER BY for a deterministic listing)
    "dim": (["d_id", "label", "region", "weight"], "d_id"),
    "t1": (["id", "g", "k", "qty", "amt", "name", "d_id", "flag"], "id"),
    "t2": (["id", "t1_id", "g", "amount", "note", "d_id"], "id"),
    "bag": (["k", "v", "s"], "k, v, s"),
    "pt": (["id", "region", "val", "tag"], "id, region, val, tag"),
    "wide": (["id", "a", "b", "c"], "id"),
}
TABLE_ORDER = ["dim", "t1", "t2", "bag", "pt", "wide"]
# Relative frequency of each table in random statements.
TABLE_WEIGHTS = {"t1": 5, "t2": 4, "bag": 4, "pt": 3, "dim": 1, "wide": 1.5}

# ------------------------------------------------------------------------------------------------
# The query corpus: name -> query. Each becomes stream table st_<name> with refresh_mode DIFFERENTIAL.
# Output column names are unique within a query (they become the stream table's columns).
# ------------------------------------------------------------------------------------------------

QUERIES = {
    # --- filters and projections -----------------------------------------------------------------
    "f_case": "SELECT id, g, CASE WHEN amt IS NULL THEN 'none' WHEN amt > 50 THEN 'big' ELSE 'small' END AS size, "
              "coalesce(name, '?') AS nm FROM t1 WHERE coalesce(g, -1) <> 2",
    "f_nulls": "SELECT id, qty, amt FROM t1 WHERE qty IS NULL OR (amt IS NOT NULL AND amt::int % 3 = 0)",
    "f_casts": "SELECT id::text || ':' || coalesce(name, '') AS label, k::numeric / 4 AS kq, qty::bigint * k AS prod, "
               "(flag IS NOT TRUE) AS not_true FROM t1 WHERE k BETWEEN 10 AND 900",
    "f_funcs": "SELECT id, nullif(g, 0) AS g0, greatest(qty, 3) AS gq, least(amt, 10.5) AS la, "
               "length(name) AS ln, upper(name) AS un FROM t1 WHERE name IS DISTINCT FROM 'beta'",
    "f_bag": "SELECT k, v, s FROM bag WHERE v IS DISTINCT FROM 3",
    "f_bag_expr": "SELECT coalesce(k, 0) + coalesce(v, 0) AS kv, s || '!' AS s2 FROM bag "
                  "WHERE s IN ('a', 'b') OR s IS NULL",
    "f_pt": "SELECT id, region, val * 2 AS v2, tag FROM pt WHERE val > 2 OR tag IS NULL",
    "f_t2": "SELECT * FROM t2 WHERE amount IS NOT NULL AND note LIKE 'n%'",
    "f_order": "SELECT id, name FROM t1 WHERE qty < 10 ORDER BY name, id",
    # --- joins ---------------------------------------------------------------------------------------
    "j2": "SELECT a.id, a.name, b.id AS bid, b.amount FROM t1 a JOIN t2 b ON b.t1_id = a.id",
    "j2_using": "SELECT d_id, a.id, d.label FROM t1 a JOIN dim d USING (d_id) WHERE a.flag",
    "j3": "SELECT a.id, b.id AS bid, d.label FROM t1 a JOIN t2 b ON b.t1_id = a.id JOIN dim d ON d.d_id = b.d_id "
          "WHERE d.region IS NOT NULL",
    "j4": "SELECT a.id, b.id AS bid, d.label, p.val FROM t1 a JOIN t2 b ON b.t1_id = a.id "
          "JOIN dim d ON d.d_id = a.d_id JOIN pt p ON p.id = a.id AND p.region = d.weight",
    "j_noneq": "SELECT a.id, b.k, b.v FROM t1 a JOIN bag b ON b.k BETWEEN a.g AND a.g + 1 WHERE a.qty > 30",
    "j_noneq2": "SELECT a.id, b.id AS bid FROM t1 a JOIN t2 b ON a.amt < b.amount AND a.g = b.g",
    "j_comma": "SELECT a.id, p.region FROM t1 a, pt p WHERE p.id = a.id AND (p.val IS NULL OR p.val < a.qty)",
    # An OR of conjunctions repeating the join key (TPC-H Q19): numeric comparisons are not leakproof, so
    # the OR is guarded in the old-state terms, and each table's implied condition is stated beside it.
    "j_or_arms": "SELECT a.id, b.id AS bid, b.amount FROM t1 a, t2 b WHERE (b.t1_id = a.id AND a.g = 1 AND a.amt > 10 "
                 "AND b.amount > 20) OR (b.t1_id = a.id AND a.g = 2 AND b.amount < a.amt)",
    "j_one_sided": "SELECT a.id, d.d_id FROM t1 a JOIN dim d ON a.flag AND d.weight > 2",
    "cross": "SELECT d.label, b.s FROM dim d CROSS JOIN bag b WHERE d.weight = 1",
    "cross2": "SELECT d1.d_id, d2.d_id AS d2 FROM dim d1, dim d2 WHERE d1.weight <= d2.weight",
    "self": "SELECT x.id, y.id AS yid FROM t1 x JOIN t1 y ON x.g = y.g AND x.id < y.id WHERE x.qty IS NOT NULL",
    "self_bag": "SELECT x.k, y.s FROM bag x JOIN bag y ON x.k = y.v WHERE x.s IS NOT NULL",
    "subq": "SELECT s.id, s.tot FROM (SELECT id, qty * 2 AS tot, g FROM t1 WHERE qty IS NOT NULL) s "
            "WHERE s.g IN (1, 2, 3)",
    "subq_join": "SELECT s.id, d.label FROM (SELECT a.id, a.d_id FROM t1 a JOIN t2 b ON a.id = b.t1_id "
                 "WHERE b.amount > 10) s JOIN dim d ON d.d_id = s.d_id",
    "subq_union": "SELECT u.x, u.src FROM (SELECT k AS x, 'bag' AS src FROM bag UNION ALL "
                  "SELECT g, 't1' FROM t1) u WHERE u.x IS NOT NULL",
    "subq_nested": "SELECT z.id, b.v FROM (SELECT y.id, y.g FROM (SELECT id, g, qty FROM t1 WHERE qty > 0) y "
                   "WHERE y.g IS NOT NULL) z JOIN bag b ON b.k = z.g WHERE b.s = 'a'",
    "j_union_sub": "SELECT d.label, u.x FROM dim d JOIN (SELECT d_id AS x FROM t1 WHERE qty > 50 UNION ALL "
                   "SELECT d_id FROM t2 WHERE amount > 20) u ON u.x = d.d_id",
    "j_natural": "SELECT * FROM t2 NATURAL JOIN dim",
    "view": "SELECT id, label, amt FROM v_t1_dim WHERE region IS DISTINCT FROM 'north'",
    "view_join": "SELECT v.id, v.label, b.id AS bid FROM v_t1_dim v JOIN t2 b ON b.t1_id = v.id",
    # --- UNION ALL -----------------------------------------------------------------------------------
    "ua": "SELECT id, 'a' AS side FROM t1 WHERE g = 1 UNION ALL SELECT id::int, 'b' FROM t2 WHERE g = 1 "
          "UNION ALL SELECT k, 'c' FROM bag WHERE v = 1",
    "ua_dups": "SELECT k, s FROM bag WHERE k < 3 UNION ALL SELECT k, s FROM bag WHERE k < 5",
    "ua_join": "SELECT a.id, d.label FROM t1 a JOIN dim d ON a.d_id = d.d_id UNION ALL "
               "SELECT b.id::int, 'none' FROM t2 b WHERE b.amount IS NULL",
    "ua_types": "SELECT id, amt FROM t1 WHERE g = 2 UNION ALL SELECT id, amount FROM t2 WHERE g = 2",
    # --- DISTINCT ------------------------------------------------------------------------------------
    "dist_join": "SELECT DISTINCT a.g, d.region FROM t1 a JOIN dim d ON d.d_id = a.d_id",
    "dist_bag": "SELECT DISTINCT k, s FROM bag",
    "dist_pt": "SELECT DISTINCT region % 2 AS parity, tag FROM pt",
    "dist_expr": "SELECT DISTINCT coalesce(name, 'x') AS nm, qty > 50 AS big FROM t1",
    "dist_sub_union": "SELECT DISTINCT u.x FROM (SELECT g AS x FROM t1 UNION ALL SELECT k FROM bag) u",
    # --- UNION (distinct) ------------------------------------------------------------------------------
    "union": "SELECT g FROM t1 UNION SELECT g FROM t2",
    "union2": "SELECT k, s FROM bag WHERE v > 4 UNION SELECT g, name FROM t1 WHERE qty > 3",
    "union3": "SELECT k AS x FROM bag UNION ALL SELECT g FROM t1 UNION SELECT region FROM pt",
    "union_types": "SELECT id, amt FROM t1 WHERE qty > 50 UNION SELECT id, amount FROM t2 WHERE note = 'x'",
    # --- INTERSECT / EXCEPT (rewritten to EXISTS / NOT EXISTS, or row numbers against counts for ALL) ---
    "so_intersect": "SELECT g FROM t1 INTERSECT SELECT g FROM t2",
    "so_except": "SELECT k, s FROM bag EXCEPT SELECT g, name FROM t1",
    "so_intersect_all": "SELECT k FROM bag INTERSECT ALL SELECT g FROM t1 WHERE qty > 20",
    "so_except_all": "SELECT k, v FROM bag EXCEPT ALL SELECT g, qty FROM t1",
    "so_nested": "(SELECT g FROM t1 UNION SELECT k FROM bag) EXCEPT SELECT g FROM t2 WHERE amount > 30",
    "so_types": "SELECT id, amt FROM t1 INTERSECT SELECT id, amount FROM t2",
    # --- GROUP BY, algebraic (COUNT/SUM/AVG) ---------------------------------------------------------
    "g_all": "SELECT g, count(*) AS n, count(qty) AS nq, sum(qty) AS sq, sum(k) AS sk, sum(amt) AS sa, "
             "avg(qty) AS aq, avg(amt) AS aa, avg(k) AS ak FROM t1 GROUP BY g",
    "g_filter": "SELECT g, count(*) FILTER (WHERE qty > 30) AS n30, sum(amt) FILTER (WHERE name IS NOT NULL) AS s_named, "
                "avg(qty) FILTER (WHERE flag) AS a_flag, count(name) FILTER (WHERE d_id < 5) AS c_d FROM t1 GROUP BY g",
    "g_expr": "SELECT k % 3 AS m, coalesce(s, '-') AS s2, count(*) AS n, sum(v) AS sv FROM bag "
              "GROUP BY k % 3, coalesce(s, '-')",
    "g_bag_null": "SELECT s, count(*) AS n, count(v) AS nv, sum(v) AS sv, avg(v) AS av FROM bag GROUP BY s",
    "g_pt": "SELECT region, count(*) AS n, sum(val) AS sv, avg(val) AS av FROM pt GROUP BY region",
    "g_t2": "SELECT note, sum(amount) AS s, count(amount) AS c, avg(amount) AS a FROM t2 GROUP BY note",
    "g_out_expr": "SELECT g, sum(qty) * 2 + count(*) AS mix, coalesce(sum(amt), 0) AS s0, "
                  "count(*) - count(qty) AS nulls FROM t1 GROUP BY g",
    "g_two_keys": "SELECT g, flag, count(*) AS n, sum(k) AS sk FROM t1 GROUP BY g, flag",
    "g_arg_expr": "SELECT g % 2 AS par, sum(qty * 2 + 1) AS s, avg(coalesce(amt, 0)) AS a, sum(k + qty) AS skq, "
                  "sum(qty::int2) AS s2, count(amt > 50 OR NULL) AS c50 FROM t1 GROUP BY g % 2",
    "g_dup": "SELECT g, g AS g_again, 'x' AS tag, count(*) AS n1, count(*) AS n2, sum(qty) AS s FROM t1 GROUP BY g "
             "ORDER BY g",
    "g_hidden_key": "SELECT count(*) AS n, sum(v) AS sv FROM bag GROUP BY k",
    "g_view": "SELECT region, count(*) AS n, sum(amt) AS s FROM v_t1_dim GROUP BY region",
    "g_subq_union": "SELECT x, count(*) AS n, sum(y) AS sy FROM (SELECT g AS x, qty AS y FROM t1 UNION ALL "
                    "SELECT g, t1_id FROM t2) u GROUP BY x",
    "g_join": "SELECT d.label, count(*) AS n, sum(b.amount) AS s, avg(a.qty) AS aq FROM t1 a "
              "JOIN t2 b ON b.t1_id = a.id JOIN dim d ON d.d_id = a.d_id GROUP BY d.label",
    "g_join2": "SELECT a.g, b.g AS bg, count(*) AS n FROM t1 a JOIN t2 b ON a.id = b.t1_id GROUP BY a.g, b.g",
    # --- aggregates without GROUP BY -----------------------------------------------------------------
    "agg_all": "SELECT count(*) AS n, sum(qty) AS s, avg(amt) AS a, sum(k) AS sk FROM t1",
    "agg_rare": "SELECT count(*) AS n, sum(v) AS s, avg(v) AS a, count(s) AS cs FROM bag WHERE k = 7 AND v = 7",
    "agg_empty": "SELECT count(*) AS n, sum(val) AS s, avg(val) AS a FROM pt WHERE region > 1000",
    "agg_filter": "SELECT count(*) FILTER (WHERE g IS NULL) AS nnull, sum(k) FILTER (WHERE flag) AS sk, "
                  "count(*) AS n FROM t1",
    "agg_join": "SELECT count(*) AS n, sum(b.amount) AS s FROM t1 a JOIN t2 b ON a.id = b.t1_id",
    # --- aggregates recomputed for touched groups (no algebraic rule, or HAVING) ----------------------
    "r_strings": "SELECT g, string_agg(name, ',' ORDER BY name) AS names, array_agg(id ORDER BY id) AS ids "
                 "FROM t1 GROUP BY g",
    "r_minmax": "SELECT s, min(v) AS mn, max(k) AS mx, min(s) AS ms FROM bag GROUP BY s",
    "r_minmax_t1": "SELECT g, min(amt) AS mn, max(amt) AS mx, max(name) AS mxn, min(k) AS mk FROM t1 GROUP BY g",
    "r_bool": "SELECT g, bool_and(flag) AS ba, bool_or(flag) AS bo, every(qty > 0) AS ev FROM t1 GROUP BY g",
    "r_stddev": "SELECT g, stddev(qty) AS sd, variance(amt) AS var FROM t1 GROUP BY g",
    "r_countdistinct": "SELECT k, count(DISTINCT v) AS dv, count(DISTINCT s) AS ds FROM bag GROUP BY k",
    "r_having": "SELECT g, count(*) AS n, sum(amt) AS s FROM t1 GROUP BY g HAVING count(*) > 20",
    "r_having2": "SELECT k, sum(v) AS sv FROM bag GROUP BY k HAVING sum(v) IS NULL OR sum(v) > 40",
    "r_nogroup": "SELECT max(amt) AS mx, min(name) AS mn, count(DISTINCT g) AS dg FROM t1",
    "r_nogroup_empty": "SELECT max(v) AS mx, string_agg(s, '' ORDER BY s) AS ss FROM bag WHERE k > 100",
    "r_join": "SELECT d.region, max(b.amount) AS mx, array_agg(DISTINCT a.g ORDER BY a.g) AS gs FROM t1 a "
              "JOIN t2 b ON b.t1_id = a.id JOIN dim d ON d.d_id = b.d_id GROUP BY d.region",
    "r_pt": "SELECT tag, min(val) AS mn, max(id) AS mx FROM pt GROUP BY tag",
    "r_having_nogroup": "SELECT count(*) AS n, sum(qty) AS s FROM t1 WHERE g = 1 HAVING count(*) > 16",
    "r_filter": "SELECT g, string_agg(name, '|' ORDER BY name) FILTER (WHERE flag) AS fl, "
                "max(qty) FILTER (WHERE name IS NULL) AS mq FROM t1 GROUP BY g",
    "minmax_filter": "SELECT g, min(qty) FILTER (WHERE flag) AS mnf, max(amt) FILTER (WHERE name IS NOT NULL) AS mxf, "
                     "count(*) AS n FROM t1 GROUP BY g",
    "minmax_nogroup": "SELECT min(k) AS mn, max(k) AS mx, min(name) AS mname, max(amt) AS mamt FROM t1",
    "minmax_join": "SELECT d.region, min(b.amount) AS mn, max(a.qty) AS mx FROM t1 a JOIN t2 b ON b.t1_id = a.id "
                   "JOIN dim d ON d.d_id = a.d_id GROUP BY d.region",
    "r_expr_key": "SELECT coalesce(name, '?') || '/' || (g % 2)::text AS key, max(k) AS mx, "
                  "string_agg(id::text, ',' ORDER BY id) AS ids FROM t1 GROUP BY coalesce(name, '?') || '/' || (g % 2)::text",
    "r_having3": "SELECT s, count(*) AS n FROM bag GROUP BY s HAVING max(k) > 7 OR min(v) IS NULL",
    # --- subqueries in expressions (EXISTS, IN, NOT IN, ANY/ALL, scalar) --------------------------------
    "sl_exists": "SELECT a.id, a.name FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b WHERE b.t1_id = a.id AND b.amount > 10)",
    "sl_not_exists_bag": "SELECT a.id, a.g FROM t1 a WHERE NOT EXISTS (SELECT 1 FROM bag b WHERE b.k = a.g)",
    "sl_in": "SELECT id, qty FROM t1 WHERE d_id IN (SELECT d_id FROM dim WHERE weight > 2)",
    "sl_not_in": "SELECT k, v FROM bag WHERE v NOT IN (SELECT qty FROM t1 WHERE g = 1 AND qty IS NOT NULL)",
    "sl_not_in_nulls": "SELECT id, g FROM t2 WHERE g NOT IN (SELECT v FROM bag WHERE k < 4)",
    "sl_any": "SELECT id FROM t2 WHERE amount > ANY (SELECT amt FROM t1 WHERE t1.g = t2.g)",
    "sl_all": "SELECT id, amount FROM t2 WHERE amount >= ALL (SELECT amt FROM t1 WHERE t1.d_id = t2.d_id)",
    "sl_row_in": "SELECT id FROM t1 WHERE (g, d_id) IN (SELECT g, d_id FROM t2)",
    "sl_scalar_where": "SELECT id, amt FROM t1 WHERE amt > (SELECT avg(amount) FROM t2 WHERE t2.g = t1.g)",
    "sl_scalar_uncorr": "SELECT id, k FROM t1 WHERE k > (SELECT avg(k) FROM t1)",
    "sl_every_join": "SELECT a.id, b.amount FROM t1 a JOIN t2 b ON b.t1_id = a.id "
    "WHERE b.amount >= (SELECT max(amount) - 20 FROM t2)",
    "sl_every_select": "SELECT id, qty, (SELECT count(*) FROM bag) AS nb FROM t1 WHERE qty > 50",
    "sl_every_exists": "SELECT k, v FROM bag WHERE EXISTS (SELECT 1 FROM dim WHERE weight > 4)",
    "sl_tie_other": "SELECT a.id, a.qty FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b WHERE b.t1_id = a.id AND b.amount > a.qty)",
    "sl_tie_not_exists": "SELECT a.id, a.g FROM t1 a WHERE NOT EXISTS (SELECT 1 FROM t2 b WHERE b.t1_id = a.id AND b.g <> a.g)",
    "sl_tie_in": "SELECT d.d_id, d.label FROM dim d WHERE d.d_id IN (SELECT t2.d_id FROM t2 WHERE t2.amount > 50)",
    "sl_tie_scalar": "SELECT a.id, a.amt FROM t1 a WHERE a.amt > (SELECT avg(b.amount) FROM t2 b WHERE b.t1_id = a.id)",
    # The deleted rows of t1's old state behind a hashed gate on the correlation (two columns, one
    # compared across types: bigint = int); an EXISTS (no aggregate) gets no gate.
    "sl_gate_two": "SELECT b.id, b.amount FROM t2 b WHERE b.amount > "
                   "(SELECT 0.5 * sum(a.amt) FROM t1 a WHERE a.g = b.g AND a.k = b.t1_id)",
    "sl_gate_text": "SELECT d.d_id, d.label FROM dim d WHERE d.weight > "
                    "(SELECT count(*) FROM t1 a WHERE a.name = d.label AND a.qty > 10)",
    "sl_gate_exists": "SELECT a.id, a.k FROM t1 a WHERE NOT EXISTS (SELECT 1 FROM t2 b WHERE b.t1_id = a.k "
                      "AND b.amount > 20)",
    "sl_scalar_select": "SELECT d.d_id, (SELECT count(*) FROM t1 a WHERE a.d_id = d.d_id) AS n, "
                        "(SELECT max(v) FROM bag WHERE bag.k = d.weight) AS mv FROM dim d",
    "sl_join": "SELECT a.id, d.label FROM t1 a JOIN dim d ON d.d_id = a.d_id WHERE EXISTS (SELECT 1 FROM t2 b "
               "WHERE b.t1_id = a.id) AND coalesce(d.region, '') NOT IN (SELECT tag FROM pt WHERE tag IS NOT NULL)",
    "sl_nested": "SELECT id FROM t1 WHERE d_id IN (SELECT d_id FROM t2 WHERE EXISTS (SELECT 1 FROM bag "
                 "WHERE bag.k = t2.g AND bag.v > t1.qty))",
    "sl_group": "SELECT g, count(*) AS n, sum(qty) AS sq FROM t1 a WHERE EXISTS (SELECT 1 FROM bag b WHERE b.k = a.g) "
                "GROUP BY g",
    # TPC-H Q20's shape: an uncorrelated IN beside a correlated aggregate filter, inside an IN's body
    # (the inner IN becomes a hashed filter there); NULL g and d_id on both sides.
    "sl_in_beside_corr": "SELECT id, name FROM t1 WHERE g IN (SELECT b.g FROM t2 b WHERE b.d_id IN (SELECT d_id FROM dim "
                         "WHERE weight > 1) AND b.amount > (SELECT avg(c.amount) FROM t2 c WHERE c.g = b.g AND "
                         "c.d_id = b.d_id))",
    "sl_in_having": "SELECT id, g FROM t1 WHERE g IN (SELECT k FROM bag GROUP BY k HAVING count(*) > 2)",
    "sl_distinct": "SELECT DISTINCT g FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.t1_id = t1.id)",
    "sl_pt": "SELECT id, val FROM pt WHERE val IN (SELECT qty FROM t1 WHERE flag)",
    "sl_or": "SELECT id FROM t1 WHERE qty > 90 OR EXISTS (SELECT 1 FROM t2 WHERE t2.t1_id = t1.id AND t2.note = 'x')",
    "sl_join_sub": "SELECT b.id, b.amount FROM t2 b JOIN t1 a ON a.id = b.t1_id WHERE b.amount > "
                   "(SELECT avg(x.amount) FROM t2 x JOIN dim d ON d.d_id = x.d_id WHERE x.g = a.g)",
    # --- outer joins ------------------------------------------------------------------------------------
    "oj_left": "SELECT a.id, a.name, b.id AS bid, b.amount FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id",
    "oj_left_anti": "SELECT a.id, a.g FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id WHERE b.id IS NULL",
    "oj_right": "SELECT d.d_id, d.label, a.id FROM t1 a RIGHT JOIN dim d ON d.d_id = a.d_id AND a.qty > 20",
    "oj_full": "SELECT a.id, b.id AS bid, coalesce(a.g, b.g) AS g FROM t1 a FULL JOIN t2 b ON a.id = b.t1_id AND a.g = b.g",
    "oj_full_using": "SELECT d_id, d.label, b.id AS bid FROM dim d FULL JOIN t2 b USING (d_id)",
    "oj_bag": "SELECT x.k, x.v, y.s FROM bag x LEFT JOIN bag y ON y.k = x.v AND y.s = 'a'",
    "oj_chain": "SELECT a.id, b.id AS bid, d.label FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id "
                "LEFT JOIN dim d ON d.d_id = b.d_id",
    "oj_inner_mix": "SELECT a.id, d.label, p.val FROM t1 a JOIN dim d ON d.d_id = a.d_id "
                    "LEFT JOIN pt p ON p.id = a.id AND p.region = d.weight",
    # Subqueries and views on the NULL-padded side: the anti-join arm reads their tables directly.
    "oj_sub_filter": "SELECT a.id, s.amount, s.note FROM t1 a LEFT JOIN (SELECT t1_id, amount, note FROM t2 "
                     "WHERE amount > 10) s ON s.t1_id = a.id",
    "oj_sub_grouped": "SELECT a.id, coalesce(s.n, 0) AS n, s.total FROM t1 a LEFT JOIN (SELECT t1_id, count(*) AS n, "
                      "sum(amount) AS total FROM t2 GROUP BY t1_id) s ON s.t1_id = a.id",
    "oj_sub_right_expr": "SELECT d.d_id, s.q2, s.nm FROM (SELECT d_id, qty * 2 AS q2, coalesce(name, '?') AS nm FROM t1 "
                         "WHERE flag) s RIGHT JOIN dim d ON s.d_id = d.d_id AND s.nm <> 'beta'",
    "oj_sub_full": "SELECT s.t1_id, s.note, d.label FROM (SELECT t1_id, d_id, note FROM t2 WHERE note LIKE 'n%') s "
                   "FULL JOIN dim d ON d.d_id = s.d_id",
    "oj_sub_keyless": "SELECT d.d_id, s.v FROM dim d LEFT JOIN (SELECT k, v FROM bag WHERE s IS NOT NULL) s "
                      "ON s.k = d.weight",
    "oj_lateral": "SELECT d.d_id, s.id FROM dim d LEFT JOIN LATERAL (SELECT id FROM t1 WHERE t1.d_id = d.d_id "
                  "AND t1.qty > d.weight) s ON s.id % 2 = 0",
    "oj_lateral_top": "SELECT a.id, s.amount, s.id AS bid FROM t1 a LEFT JOIN LATERAL (SELECT id, amount FROM t2 "
                      "WHERE t2.t1_id = a.id ORDER BY amount DESC NULLS LAST, id LIMIT 1) s ON true",
    "oj_view": "SELECT d.d_id, d.label, v.id, v.amt FROM dim d LEFT JOIN v_t1_dim v ON v.region = d.region AND v.qty > 20",
    "oj_group": "SELECT a.g, count(b.id) AS nb, sum(b.amount) AS s FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id GROUP BY a.g",
    "oj_multi_col": "SELECT a.id, b.id AS bid FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id AND b.g = a.g AND b.amount > a.amt",
    "oj_dropped": "SELECT p.id, p.val, w.a, w.c FROM pt p LEFT JOIN wide w ON w.id = p.id",
    "oj_distinct": "SELECT DISTINCT a.g, b.note FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id",
    "oj_nonequi": "SELECT d.d_id, b.k FROM dim d LEFT JOIN bag b ON b.k BETWEEN d.weight AND d.weight + 1",
    "oj_sublink": "SELECT a.id, b.id AS bid FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id "
                  "WHERE EXISTS (SELECT 1 FROM dim d WHERE d.d_id = a.d_id AND d.weight > 1)",
    # --- window functions (touched partitions recomputed) -----------------------------------------------
    "w_rank": "SELECT id, g, rank() OVER (PARTITION BY g ORDER BY amt, id) AS r, "
              "sum(qty) OVER (PARTITION BY g) AS sq FROM t1",
    "w_frames": "SELECT id, g, sum(qty) OVER (PARTITION BY g ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s2, "
                "lag(name) OVER (PARTITION BY g ORDER BY id) AS prev, "
                "avg(amt) OVER (PARTITION BY g ORDER BY id RANGE UNBOUNDED PRECEDING) AS running FROM t1 WHERE k > 50",
    "w_two_windows": "SELECT id, d_id, g, row_number() OVER (PARTITION BY d_id, g ORDER BY id) AS rn, "
                     "count(*) OVER (PARTITION BY d_id) AS n_d FROM t1",
    "w_bag": "SELECT k, v, s, dense_rank() OVER (PARTITION BY s ORDER BY v) AS dr, "
             "first_value(k) OVER (PARTITION BY s ORDER BY v, k) AS fk FROM bag",
    "w_null_key": "SELECT id, name, ntile(2) OVER (PARTITION BY name ORDER BY id) AS half FROM t1",
    "w_join": "SELECT a.id, d.label, rank() OVER (PARTITION BY d.label ORDER BY a.qty, a.id) AS r FROM t1 a "
              "JOIN dim d ON d.d_id = a.d_id",
    "w_expr_key": "SELECT id, percent_rank() OVER (PARTITION BY g % 3 ORDER BY k) AS pr FROM t1",
    # windows with several PARTITION BY clauses (split into nested levels, one per shared key)
    "wm_two_keys": "SELECT id, g, d_id, rank() OVER (PARTITION BY g ORDER BY amt, id) AS r, "
                   "sum(qty) OVER (PARTITION BY d_id) AS sq FROM t1 WHERE k > 20",
    "wm_three_keys": "SELECT id, lag(qty) OVER (PARTITION BY g ORDER BY id) AS prev, "
                     "count(*) OVER (PARTITION BY name) AS n_name, "
                     "coalesce(qty, 0) + sum(qty) OVER (PARTITION BY k % 4 ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s3, "
                     "row_number() OVER (PARTITION BY g, flag ORDER BY k, id) AS rn FROM t1",
    "wm_join": "SELECT a.id, b.id AS bid, dense_rank() OVER (PARTITION BY d.label ORDER BY b.amount, b.id) AS dr, "
               "max(a.amt) OVER (PARTITION BY b.g) AS mx FROM t1 a JOIN t2 b ON b.t1_id = a.id JOIN dim d ON d.d_id = b.d_id",
    "wm_subquery": "SELECT x.id, x.r, x.n FROM (SELECT id, rank() OVER (PARTITION BY g ORDER BY k, id) AS r, "
                   "count(*) OVER (PARTITION BY d_id) AS n FROM t1) x WHERE x.r <= 3 OR x.n > 5",
    "wm_bag": "SELECT k, v, s, ntile(3) OVER (PARTITION BY s ORDER BY v, k) AS t, "
              "avg(v) OVER (PARTITION BY k) AS av FROM bag",
    # subqueries whose bodies are probed coarsely (aggregates in FROM, set operations, LIMIT, outer joins)
    "slc_agg": "SELECT id, amt FROM t1 WHERE amt > (SELECT max(s) FROM (SELECT g, sum(amount) AS s FROM t2 GROUP BY g) x) / 10",
    "slc_union": "SELECT id FROM t1 WHERE g IN (SELECT k FROM bag UNION SELECT g FROM t2 WHERE amount > 40)",
    "slc_limit": "SELECT d_id, (SELECT a.id FROM t1 a WHERE a.d_id = d.d_id ORDER BY a.qty DESC NULLS LAST, a.id LIMIT 1) "
                 "AS top FROM dim d",
    "slc_cte": "WITH ids AS (SELECT t1_id FROM t2 WHERE amount > 5) SELECT id, name FROM t1 WHERE id IN (SELECT t1_id FROM ids)",
    "slc_outer": "SELECT d.d_id FROM dim d WHERE EXISTS (SELECT 1 FROM t1 a LEFT JOIN t2 b ON b.t1_id = a.id "
                 "WHERE a.d_id = d.d_id AND b.id IS NULL)",
    # --- subqueries in FROM with aggregation, DISTINCT or windows (touched keys, new minus old) ---------
    "agsub_q13": "SELECT c_count, count(*) AS custdist FROM (SELECT a.id, count(b.id) AS c_count FROM t1 a "
                 "LEFT JOIN t2 b ON b.t1_id = a.id AND b.note IS DISTINCT FROM 'x' GROUP BY a.id) c GROUP BY c_count",
    "agsub_join": "SELECT d.label, s.total FROM dim d JOIN (SELECT d_id, sum(amount) AS total FROM t2 GROUP BY d_id) s "
                  "ON s.d_id = d.d_id WHERE s.total > 10",
    "agsub_having": "SELECT x.g, x.n FROM (SELECT g, count(*) AS n FROM t1 GROUP BY g HAVING count(*) > 3) x",
    "agsub_nogroup": "SELECT a.id FROM t1 a, (SELECT avg(qty) AS aq FROM t1) s WHERE a.qty > s.aq",
    "agsub_distinct": "SELECT s.k, b.v FROM (SELECT DISTINCT k FROM bag WHERE v > 2) s JOIN bag b ON b.k = s.k",
    "agsub_window": "SELECT x.id, x.r FROM (SELECT id, g, rank() OVER (PARTITION BY g ORDER BY k, id) AS r FROM t1) x "
                    "WHERE x.r <= 2",
    "agsub_q15": "WITH rev AS (SELECT t1_id AS sup, sum(amount) AS total FROM t2 GROUP BY t1_id) "
                 "SELECT a.id, a.name, r.total FROM t1 a JOIN rev r ON r.sup = a.id WHERE r.total = (SELECT max(total) FROM rev)",
    "agsub_nested": "SELECT n, count(*) AS c FROM (SELECT g, count(*) AS n FROM (SELECT DISTINCT g, d_id FROM t1) y "
                    "GROUP BY g) z GROUP BY n",
    "agsub_expr_key": "SELECT m, s FROM (SELECT k % 3 AS m, string_agg(s, ',' ORDER BY s) AS s FROM bag GROUP BY k % 3) x",
    # subqueries in the select list or HAVING of an aggregating query (TPC-H Q11 shape)
    "agsl_having": "SELECT g, sum(amt) AS s FROM t1 GROUP BY g HAVING sum(amt) > (SELECT sum(amount) * 0.1 FROM t2)",
    "agsl_select": "SELECT g, count(*) AS n, (SELECT count(*) FROM t2 WHERE t2.g = t1.g) AS n2 FROM t1 GROUP BY g",
    "agsl_self_having": "SELECT g, sum(amt) AS s FROM t1 GROUP BY g HAVING sum(amt) > (SELECT sum(amt) * 0.2 FROM t1)",
    "agsl_where_every": "SELECT g, count(*) AS n, sum(amt) AS s FROM t1 WHERE amt > (SELECT avg(amount) FROM t2) GROUP BY g",
    "agsl_from_every": "SELECT c.g, count(*) AS n, sum(c.qty) AS sq FROM (SELECT g, qty FROM t1 WHERE qty > "
    "(SELECT avg(v) FROM bag) AND NOT EXISTS (SELECT 1 FROM t2 WHERE t2.t1_id = t1.id)) c GROUP BY c.g",
    "agsl_where_single": "SELECT count(*) AS n, sum(qty) AS sq FROM t1 WHERE qty < (SELECT max(v) FROM bag)",
    "agsl_where_minmax": "SELECT g, min(amt) AS lo, max(amt) AS hi FROM t1 WHERE EXISTS (SELECT 1 FROM dim WHERE weight > 3) "
    "GROUP BY g",
    "agsl_nogroup": "SELECT count(*) AS n, (SELECT max(v) FROM bag) AS mv FROM t1",
    # --- set-returning functions, VALUES and LATERAL ----------------------------------------------------
    "srf_target": "SELECT id, generate_series(1, coalesce(qty, 0) % 3) AS n FROM t1 WHERE g < 4",
    "srf_from": "SELECT a.id, x.n FROM t1 a, generate_series(1, coalesce(a.g, 0) % 3) AS x(n)",
    "srf_unnest": "SELECT b.k, u.part FROM bag b, unnest(string_to_array(coalesce(b.s, ''), 'a')) AS u(part)",
    "srf_ordinality": "SELECT d.d_id, e.v, e.i FROM dim d CROSS JOIN LATERAL unnest(ARRAY[d.weight, d.weight * 2]) "
                      "WITH ORDINALITY AS e(v, i)",
    "srf_values": "SELECT a.id, v.tag FROM t1 a JOIN (VALUES (1, 'one'), (2, 'two'), (NULL, 'none')) v(g, tag) "
                  "ON v.g IS NOT DISTINCT FROM a.g",
    "lat_top": "SELECT d.d_id, l.id, l.qty FROM dim d, LATERAL (SELECT a.id, a.qty FROM t1 a WHERE a.d_id = d.d_id "
               "ORDER BY a.qty DESC NULLS LAST, a.id LIMIT 2) l",
    "lat_agg": "SELECT a.id, s.n, s.total FROM t1 a, LATERAL (SELECT count(*) AS n, sum(b.amount) AS total FROM t2 b "
               "WHERE b.t1_id = a.id) s WHERE a.g IN (1, 2, 3)",
    "lat_simple": "SELECT a.id, l.bid FROM t1 a CROSS JOIN LATERAL (SELECT b.id AS bid FROM t2 b WHERE b.t1_id = a.id "
                  "AND b.g = a.g) l",
    # --- DISTINCT ON (touched keys recomputed) -----------------------------------------------------------
    "don_basic": "SELECT DISTINCT ON (g) g, id, amt FROM t1 ORDER BY g, amt DESC NULLS LAST, id",
    "don_bag": "SELECT DISTINCT ON (s) s, k, v FROM bag ORDER BY s, v, k",
    "don_sub": "SELECT x.d_id, x.id, d.label FROM (SELECT DISTINCT ON (d_id) d_id, id FROM t1 ORDER BY d_id, k DESC, id) x "
               "JOIN dim d ON d.d_id = x.d_id",
    "don_join": "SELECT DISTINCT ON (d.region) d.region, a.id, a.qty FROM t1 a JOIN dim d ON d.d_id = a.d_id "
                "ORDER BY d.region, a.qty, a.id",
    # --- GROUPING SETS / ROLLUP / CUBE (one GROUP BY per set) --------------------------------------------
    "gs_rollup": "SELECT g, flag, count(*) AS n, sum(qty) AS sq FROM t1 GROUP BY ROLLUP (g, flag)",
    "gs_cube": "SELECT s, k % 2 AS par, count(*) AS n, max(v) AS mx, GROUPING(s, k % 2) AS gr FROM bag "
               "GROUP BY CUBE (s, k % 2)",
    "gs_sets": "SELECT d.region, a.g, sum(a.amt) AS s FROM t1 a JOIN dim d ON d.d_id = a.d_id "
               "GROUP BY GROUPING SETS ((d.region), (a.g), ()) HAVING count(*) > 1",
    # --- ORDER BY ... LIMIT (top-k: recomputed only when a change ranks inside the window) -------------
    "topk_basic": "SELECT id, amt FROM t1 ORDER BY amt DESC NULLS LAST, id LIMIT 5",
    "topk_offset": "SELECT id, k FROM t1 WHERE g < 5 ORDER BY k, id LIMIT 4 OFFSET 2",
    "topk_group": "SELECT g, sum(qty) AS s FROM t1 GROUP BY g ORDER BY sum(qty) DESC NULLS LAST, g LIMIT 3",
    "topk_join": "SELECT a.id, b.amount FROM t1 a JOIN t2 b ON b.t1_id = a.id ORDER BY b.amount, b.id LIMIT 6",
    "topk_bag": "SELECT k, v, s FROM bag ORDER BY v NULLS FIRST, k, s LIMIT 5",
    # top-k over groups (stored rows ranked against the touched groups' new rows) and over subqueries
    "topk_group_having": "SELECT g, count(*) AS n, max(amt) AS m FROM t1 GROUP BY g HAVING count(*) > 1 "
                         "ORDER BY max(amt) DESC NULLS FIRST, g NULLS FIRST LIMIT 2",
    "topk_group_join": "SELECT d.region, a.g, sum(a.qty) AS s, count(*) AS n FROM t1 a JOIN dim d ON d.d_id = a.d_id "
                       "GROUP BY d.region, a.g ORDER BY s DESC NULLS LAST, d.region NULLS FIRST, a.g NULLS LAST LIMIT 4",
    "topk_group_sub": "SELECT a.g, sum(a.amt) AS s FROM t1 a WHERE a.d_id IN (SELECT d_id FROM dim WHERE weight > 2) "
                      "GROUP BY a.g ORDER BY s NULLS FIRST, a.g NULLS LAST LIMIT 3",
    "topk_sub_bag": "SELECT a.id, a.qty FROM t1 a WHERE a.qty = (SELECT max(b.qty) FROM t1 b WHERE b.g = a.g) "
                    "ORDER BY a.qty DESC NULLS LAST, a.id LIMIT 4",
    # --- common table expressions (inlined) ------------------------------------------------------------
    "cte_simple": "WITH big AS (SELECT id, g, amt FROM t1 WHERE amt > 20) SELECT b.id, b.amt, d.label FROM big b "
                  "JOIN dim d ON d.d_id = b.g",
    "cte_multi": "WITH x AS (SELECT k, v FROM bag WHERE v > 2), y AS (SELECT k FROM x WHERE k < 8) "
                 "SELECT x.k, x.v FROM x JOIN y ON y.k = x.v",
    "cte_colnames": "WITH tot (grp, total) AS (SELECT g, sum(amount) FROM t2 GROUP BY g) "
                    "SELECT a.id, t.total FROM t1 a JOIN tot t ON t.grp = a.g WHERE t.total = (SELECT max(total) FROM tot)",
    "cte_group": "WITH j AS (SELECT a.g, b.amount FROM t1 a JOIN t2 b ON b.t1_id = a.id) "
                 "SELECT g, count(*) AS n, sum(amount) AS s FROM j GROUP BY g",
    # --- a source with dropped columns ----------------------------------------------------------------
    "drop_star": "SELECT * FROM wide",
    "drop_filter": "SELECT id, c, a + 1 AS a1 FROM wide WHERE a > 3 OR c IS NULL",
    "drop_join": "SELECT w.id, w.b, a.name FROM wide w JOIN t1 a ON a.id = w.id",
    "drop_group": "SELECT c, count(*) AS n, sum(b) AS sb, max(a) AS mx FROM wide GROUP BY c",
    "r_fd": "SELECT a.id, a.name, count(b.id) AS nb FROM t1 a JOIN t2 b ON b.t1_id = a.id GROUP BY a.id",
    # --- WITH RECURSIVE (UNION ALL: derivations counted; UNION: delete and rederive) ----------------------
    # reachability in the graph g -> d_id of t1 (nodes 0..12): cycles everywhere
    "rec_reach": "WITH RECURSIVE reach(src, dst) AS (SELECT g, d_id FROM t1 WHERE qty > 65 AND d_id IS NOT NULL "
                 "UNION SELECT r.src, a.d_id FROM reach r JOIN t1 a ON a.g = r.dst WHERE a.qty > 65 AND a.d_id IS NOT NULL) "
                 "SELECT * FROM reach",
    # chains of t2 rows (child.t1_id = parent.id, ids increasing: acyclic) with depth and path
    "rec_chain": "WITH RECURSIVE chain(id, depth, path) AS (SELECT id, 0, id::text FROM t2 WHERE note = 'n1' "
                 "UNION ALL SELECT b.id, c.depth + 1, c.path || '>' || b.id::text FROM chain c "
                 "JOIN t2 b ON b.t1_id = c.id AND b.id > c.id WHERE c.depth < 4) SELECT * FROM chain",
    # a step joining two base tables, a seed joining two, NULLs carried along, a depth bound
    "rec_join2": "WITH RECURSIVE up(id, name, lvl, label) AS (SELECT a.id::bigint, a.name, 1, d.label FROM t1 a "
                 "JOIN dim d ON d.d_id = a.d_id WHERE a.qty > 80 UNION ALL SELECT b.id, u.name, u.lvl + 1, d.label "
                 "FROM up u JOIN t2 b ON b.t1_id = u.id JOIN dim d ON d.d_id = b.d_id WHERE u.lvl < 3) SELECT * FROM up",
    # a set with NULLs in every column (rows compared as UNION does: NULL equals NULL)
    "rec_nulls": "WITH RECURSIVE grp(g, name) AS (SELECT g, name FROM t1 WHERE flag AND qty > 70 UNION "
                 "SELECT a.g, r.name FROM grp r JOIN t2 b ON b.g IS NOT DISTINCT FROM r.g AND b.amount > 40 "
                 "JOIN t1 a ON a.id = b.t1_id) SELECT * FROM grp",
    # a constant seed, a set bounded by depth
    "rec_levels": "WITH RECURSIVE lv(node, depth) AS (SELECT 0, 0 UNION SELECT a.d_id, lv.depth + 1 FROM lv "
                  "JOIN t1 a ON a.g = lv.node WHERE lv.depth < 3 AND a.d_id IS NOT NULL) SELECT * FROM lv",
    # two seed arms, a source with dropped columns, output columns renamed
    "rec_wide": "WITH RECURSIVE w(id, a, c, lvl) AS (SELECT id, a, c, 0 FROM wide WHERE a = 1 UNION ALL "
                "SELECT id, a, c, 0 FROM wide WHERE c IS NULL AND a > 5 UNION ALL SELECT x.id, w.a, x.c, w.lvl + 1 "
                "FROM w JOIN wide x ON x.a = w.id % 10 AND x.id > w.id WHERE w.lvl < 3) "
                "SELECT id AS wid, a AS wa, c AS wc, lvl AS wl FROM w",
}

# ------------------------------------------------------------------------------------------------
# Random values
# ------------------------------------------------------------------------------------------------

NAMES = [None, "", "alpha", "beta", "gamma", "Beta", "o'hara", "ünï", "delta", "alpha"]
NOTES = [None, "n1", "n2", "note", "x", "N3"]
BAG_S = [None, "a", "b", "c", ""]
TAGS = [None, "p", "q", "r"]
REGIONS = ["north", "south", "east", None]


def maybe(rng, p, value):
    return None if rng.random() < p else value


class Values:
    def __init__(self, rng):
        self.rng = rng

    def g(self):
        return maybe(self.rng, 0.1, self.rng.randint(0, 5))

    def k(self):
        r = self.rng.random()
        if r < 0.1:
            return self.rng.choice([10**12, 10**12 + 7, -(10**11)])
        return self.rng.randint(0, 1000)

    def qty(self):
        return maybe(self.rng, 0.15, self.rng.randint(-5, 100))

    def amt(self):
        return maybe(self.rng, 0.15, decimal.Decimal(self.rng.randint(-1000, 20000)) / 100)

    def amount(self):
        scale = self.rng.choice([1, 10, 100, 1000])
        return maybe(self.rng, 0.15, decimal.Decimal(self.rng.randint(-100, 5000)) / scale)

    def name(self):
        return self.rng.choice(NAMES)

    def d_id(self):
        return maybe(self.rng, 0.1, self.rng.randint(1, 10))

    def flag(self):
        return self.rng.choice([None, True, False, True])

    def t1_row(self, id_):
        return (id_, self.g(), self.k(), self.qty(), self.amt(), self.name(), self.d_id(), self.flag())

    def t2_row(self, id_, t1_ids):
        if t1_ids and self.rng.random() < 0.75:
            t1_id = self.rng.choice(t1_ids)
        else:
            t1_id = maybe(self.rng, 0.4, self.rng.randint(1, 400))
        return (id_, t1_id, self.g(), self.amount(), self.rng.choice(NOTES), self.d_id())

    def bag_row(self):
        return (maybe(self.rng, 0.1, self.rng.randint(0, 9)), maybe(self.rng, 0.15, self.rng.randint(0, 9)),
                self.rng.choice(BAG_S))

    def pt_row(self):
        return (self.rng.randint(1, 200), maybe(self.rng, 0.1, self.rng.randint(0, 8)),
                maybe(self.rng, 0.15, self.rng.randint(-3, 20)), self.rng.choice(TAGS))

    def wide_row(self, id_):
        return (id_, maybe(self.rng, 0.15, self.rng.randint(0, 9)), self.amount(), self.rng.choice(TAGS))

    def dim_row(self, d_id):
        return (d_id, self.rng.choice(["L1", "L2", "L3", "L4", "L'5"]) + str(d_id % 3), self.rng.choice(REGIONS),
                self.rng.randint(0, 3))


def initial_data(rng):
    """INSERT statements for the initial contents."""
    val = Values(rng)
    stmts = []
    stmts.append("INSERT INTO dim VALUES " + values_list([val.dim_row(i) for i in range(1, 9)]))
    t1_ids = sorted(rng.sample(range(1, 300), 110))
    stmts.append("INSERT INTO t1 VALUES " + values_list([val.t1_row(i) for i in t1_ids]))
    t2_ids = sorted(rng.sample(range(1, 400), 130))
    stmts.append("INSERT INTO t2 VALUES " + values_list([val.t2_row(i, t1_ids) for i in t2_ids]))
    bag = []
    while len(bag) < 110:
        if bag and rng.random() < 0.3:
            bag.extend([rng.choice(bag)] * rng.randint(1, 3))
        else:
            bag.append(val.bag_row())
    stmts.append("INSERT INTO bag VALUES " + values_list(bag))
    stmts.append("INSERT INTO pt VALUES " + values_list([val.pt_row() for _ in range(90)]))
    stmts.append("INSERT INTO wide (id, a, b, c) VALUES "
                 + values_list([val.wide_row(i) for i in sorted(rng.sample(range(1, 300), 60))]))
    return stmts


# ------------------------------------------------------------------------------------------------
# Random DML
# ------------------------------------------------------------------------------------------------

class DmlGenerator:
    """Random DML statements. Reads the current state (under the transaction running the DML, with a
    deterministic order) to pick targets, so a seed reproduces the same statements."""

    CAPS = {"t1": 170, "t2": 190, "bag": 170, "pt": 140, "dim": 12, "wide": 120}
    FLOORS = {"t1": 50, "t2": 60, "bag": 50, "pt": 40, "dim": 4, "wide": 20}

    def __init__(self, rng, cur):
        self.rng = rng
        self.cur = cur
        self.val = Values(rng)

    # --- state ---
    def col(self, sql):
        return [r[0] for r in self.cur.execute(sql).fetchall()]

    def count(self, table):
        return self.cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def ids(self, table, col="id"):
        return self.col(f"SELECT {col} FROM {table} ORDER BY {col}")

    def pick(self, seq, n):
        return self.rng.sample(seq, min(n, len(seq)))

    def fresh_ids(self, existing, n, lo, hi):
        taken = set(existing)
        out = []
        while len(out) < n:
            c = self.rng.randint(lo, hi)
            if c not in taken:
                taken.add(c)
                out.append(c)
        return out

    def in_list(self, values):
        return "(" + (", ".join(lit(v) for v in values) or "NULL") + ")"

    def random_table(self):
        return self.rng.choices(list(TABLE_WEIGHTS), weights=list(TABLE_WEIGHTS.values()))[0]

    # --- one statement ---
    def statement(self, table=None):
        if table is None:
            table = self.random_table()
        n = self.count(table)
        kind = self.rng.choices(["insert", "update", "delete"], weights=[4, 5, 3])[0]
        if n >= self.CAPS[table] and kind == "insert":
            kind = "delete"
        elif n <= self.FLOORS[table] and kind == "delete" or n == 0:
            kind = "insert"
        return getattr(self, f"{table}_{kind}")()

    # t1 --------------------------------------------------------------------------------------------
    def t1_insert(self):
        ids = self.ids("t1")
        r = self.rng.random()
        if r < 0.2 and ids:
            # Upsert: some ids exist (updated), some do not (inserted); each id once.
            targets = sorted(set(self.pick(ids, self.rng.randint(1, 3)) + self.fresh_ids(ids, self.rng.randint(0, 3), 1, 400)))
            rows = [self.val.t1_row(i) for i in targets]
            return (f"INSERT INTO t1 AS t VALUES {values_list(rows)} ON CONFLICT (id) DO UPDATE SET "
                    "qty = EXCLUDED.qty, amt = t.amt + 1, g = coalesce(EXCLUDED.g, t.g)")
        if r < 0.35 and ids:
            targets = sorted(set(self.pick(ids, 2) + self.fresh_ids(ids, self.rng.randint(1, 4), 1, 400)))
            rows = [self.val.t1_row(i) for i in targets]
            return f"INSERT INTO t1 VALUES {values_list(rows)} ON CONFLICT DO NOTHING"
        rows = [self.val.t1_row(i) for i in self.fresh_ids(ids, self.rng.randint(1, 8), 1, 400)]
        return f"INSERT INTO t1 VALUES {values_list(rows)}"

    def t1_update(self):
        ids = self.ids("t1")
        rng = self.rng
        which = rng.choice(["key", "group", "group_all", "join", "values", "values", "noop", "many", "swap_groups",
                            "extreme"])
        if which == "key":
            old = sorted(self.pick(ids, rng.randint(1, 3)))
            new = self.fresh_ids(ids, len(old), 1, 400)
            cases = " ".join(f"WHEN {o} THEN {n}" for o, n in zip(old, new))
            return f"UPDATE t1 SET id = CASE id {cases} END WHERE id IN {self.in_list(old)}"
        if which == "group":
            return f"UPDATE t1 SET g = {lit(self.val.g())} WHERE id IN {self.in_list(sorted(self.pick(ids, rng.randint(1, 6))))}"
        if which == "group_all":
            old = rng.randint(0, 5)
            cond = f"g = {old}" if rng.random() < 0.8 else "g IS NULL"
            return f"UPDATE t1 SET g = {lit(self.val.g())} WHERE {cond} AND id % 3 = {rng.randint(0, 2)}"
        if which == "join":
            return (f"UPDATE t1 SET d_id = {lit(self.val.d_id())} "
                    f"WHERE id IN {self.in_list(sorted(self.pick(ids, rng.randint(1, 5))))}")
        if which == "values":
            sets = rng.sample([
                f"qty = {lit(self.val.qty())}", "qty = qty + 7", f"amt = {lit(self.val.amt())}", "amt = -amt",
                "amt = amt + 0.25", f"k = {lit(self.val.k())}", "k = k + 3", f"name = {lit(self.val.name())}",
                f"flag = {lit(self.val.flag())}", "flag = NOT flag", "qty = NULL", "amt = NULL"], rng.randint(1, 3))
            # Not two assignments to one column.
            seen = set()
            sets = [s for s in sets if not (s.split(" ")[0] in seen or seen.add(s.split(" ")[0]))]
            return f"UPDATE t1 SET {', '.join(sets)} WHERE id IN {self.in_list(sorted(self.pick(ids, rng.randint(1, 8))))}"
        if which == "extreme":
            return (f"UPDATE t1 SET amt = amt - 100, qty = qty - 50, k = k - 1000, name = {lit(self.val.name())} "
                    f"WHERE id = {self.extreme_t1()}")
        if which == "noop":
            return f"UPDATE t1 SET qty = qty, g = g WHERE g IS NOT DISTINCT FROM {lit(self.val.g())}"
        if which == "many":
            if rng.random() < 0.25:
                return "UPDATE t1 SET k = k + 1"  # every row
            return f"UPDATE t1 SET flag = NOT flag, k = k + 1 WHERE id % 7 = {rng.randint(0, 6)}"
        a, b = rng.sample(range(0, 6), 2)
        return f"UPDATE t1 SET g = CASE WHEN g = {a} THEN {b} ELSE {a} END WHERE g IN ({a}, {b})"

    def extreme_t1(self):
        """The id of the row holding the largest/smallest amt/qty of a random group (NULLs last)."""
        col = self.rng.choice(["amt", "qty", "k"])
        direction = self.rng.choice(["ASC", "DESC"])
        return (f"(SELECT id FROM t1 WHERE g IS NOT DISTINCT FROM {lit(self.val.g())} AND {col} IS NOT NULL "
                f"ORDER BY {col} {direction}, id LIMIT 1)")

    def t1_delete(self):
        ids = self.ids("t1")
        r = self.rng.random()
        if r < 0.15:
            return f"DELETE FROM t1 WHERE id = {self.extreme_t1()}"  # a group's min or max goes
        if r < 0.6:
            return f"DELETE FROM t1 WHERE id IN {self.in_list(sorted(self.pick(ids, self.rng.randint(1, 8))))}"
        if r < 0.8:
            return f"DELETE FROM t1 WHERE g IS NOT DISTINCT FROM {lit(self.val.g())} AND qty > {self.rng.randint(20, 90)}"
        return f"DELETE FROM t1 WHERE name IS NULL AND id % 5 = {self.rng.randint(0, 4)}"

    # t2 --------------------------------------------------------------------------------------------
    def t2_insert(self):
        ids = self.ids("t2")
        t1_ids = self.ids("t1")
        rows = [self.val.t2_row(i, t1_ids) for i in self.fresh_ids(ids, self.rng.randint(1, 8), 1, 600)]
        return f"INSERT INTO t2 VALUES {values_list(rows)}"

    def t2_update(self):
        ids = self.ids("t2")
        t1_ids = self.ids("t1")
        rng = self.rng
        target = self.in_list(sorted(self.pick(ids, rng.randint(1, 6))))
        which = rng.choice(["join", "join", "values", "key", "group", "d"])
        if which == "join":
            new = rng.choice(t1_ids) if t1_ids and rng.random() < 0.8 else None
            return f"UPDATE t2 SET t1_id = {lit(new)} WHERE id IN {target}"
        if which == "values":
            return (f"UPDATE t2 SET amount = {lit(self.val.amount())}, note = {lit(rng.choice(NOTES))} "
                    f"WHERE id IN {target}")
        if which == "key":
            old = sorted(self.pick(ids, rng.randint(1, 3)))
            new = self.fresh_ids(ids, len(old), 1, 600)
            cases = " ".join(f"WHEN {o} THEN {n}" for o, n in zip(old, new))
            return f"UPDATE t2 SET id = CASE id {cases} END WHERE id IN {self.in_list(old)}"
        if which == "group":
            return f"UPDATE t2 SET g = {lit(self.val.g())}, amount = amount * 2 WHERE id IN {target}"
        return f"UPDATE t2 SET d_id = {lit(self.val.d_id())} WHERE id IN {target}"

    def t2_delete(self):
        ids = self.ids("t2")
        if self.rng.random() < 0.7:
            return f"DELETE FROM t2 WHERE id IN {self.in_list(sorted(self.pick(ids, self.rng.randint(1, 8))))}"
        return f"DELETE FROM t2 WHERE note IS NOT DISTINCT FROM {lit(self.rng.choice(NOTES))} AND id % 4 = {self.rng.randint(0, 3)}"

    # bag (keyless, duplicates) ---------------------------------------------------------------------
    def bag_rows(self):
        return self.cur.execute("SELECT k, v, s FROM bag ORDER BY k, v, s").fetchall()

    def bag_insert(self):
        rows = self.bag_rows()
        out = []
        for _ in range(self.rng.randint(1, 6)):
            r = self.rng.random()
            if r < 0.4 and rows:
                out.extend([tuple(self.rng.choice(rows))] * self.rng.randint(1, 3))  # duplicates of existing rows
            elif r < 0.5:
                out.append((None, None, None))
            else:
                row = self.val.bag_row()
                out.extend([row] * self.rng.choice([1, 1, 2]))
        return f"INSERT INTO bag VALUES {values_list(out)}"

    def bag_update(self):
        rng = self.rng
        which = rng.choice(["v", "k", "s", "one", "v", "k", "s", "one", "all"])
        if which == "all":
            return "UPDATE bag SET v = v"  # every row, no change
        if which == "v":
            return f"UPDATE bag SET v = {lit(maybe(rng, 0.2, rng.randint(0, 9)))} WHERE k = {rng.randint(0, 9)}"
        if which == "k":
            return (f"UPDATE bag SET k = {lit(maybe(rng, 0.2, rng.randint(0, 9)))} "
                    f"WHERE v IS NOT DISTINCT FROM {lit(maybe(rng, 0.2, rng.randint(0, 9)))}")
        if which == "s":
            return f"UPDATE bag SET s = upper(s) WHERE k % 3 = {rng.randint(0, 2)}"
        # One of several identical rows.
        rows = self.bag_rows()
        row = rng.choice(rows)
        pred = same_row_predicate(["k", "v", "s"], row)
        return (f"UPDATE bag SET v = coalesce(v, 0) + 1 WHERE ctid = (SELECT ctid FROM bag WHERE {pred} LIMIT 1)")

    def bag_delete(self):
        rng = self.rng
        rows = self.bag_rows()
        r = rng.random()
        if r < 0.5:
            # One copy of a row that may have duplicates: any copy is the same multiset.
            row = rng.choice(rows)
            pred = same_row_predicate(["k", "v", "s"], row)
            return f"DELETE FROM bag WHERE ctid = (SELECT ctid FROM bag WHERE {pred} LIMIT 1)"
        if r < 0.65:
            row = rng.choice(rows)
            return f"DELETE FROM bag WHERE {same_row_predicate(['k', 'v', 's'], row)}"  # all copies
        if r < 0.8:
            # All copies of the row with the largest k (or v) among those with a given s.
            col = rng.choice(["k", "v"])
            return (f"DELETE FROM bag WHERE ({col}, s) IN (SELECT {col}, s FROM bag WHERE s IS NOT DISTINCT FROM "
                    f"{lit(rng.choice(BAG_S))} AND {col} IS NOT NULL ORDER BY {col} DESC LIMIT 1)")
        return f"DELETE FROM bag WHERE k = {rng.randint(0, 9)} AND v IS NULL OR s = {lit(rng.choice(BAG_S[1:]))} AND k < 3"

    # pt (partitioned; DML through the parent) ------------------------------------------------------
    def partition(self):
        """With PGT_DVM_PARTITION_DML=1, sometimes a partition of pt to name directly."""
        if PARTITION_DML and self.rng.random() < 0.35:
            return self.rng.choice(sorted(PARTITIONS))
        return None

    def pt_insert(self):
        part = self.partition()
        if part:
            lo, hi = PARTITIONS[part]
            rows = [(r[0], self.rng.randint(lo, hi)) + r[2:] for r in (self.val.pt_row() for _ in range(self.rng.randint(1, 5)))]
            return f"INSERT INTO {part} (id, region, val, tag) VALUES {values_list(rows)}"
        rows = [self.val.pt_row() for _ in range(self.rng.randint(1, 8))]
        return f"INSERT INTO pt VALUES {values_list(rows)}"

    def pt_update(self):
        rng = self.rng
        ids = sorted(set(self.ids("pt")))
        target = self.in_list(sorted(self.pick(ids, rng.randint(1, 6))))
        part = self.partition()
        if part:  # not the partition key: a row cannot leave a partition named directly
            return f"UPDATE {part} SET val = {lit(maybe(rng, 0.15, rng.randint(-3, 20)))}, tag = {lit(rng.choice(TAGS))} WHERE id IN {target}"
        which = rng.choice(["move", "move", "val", "tag"])
        if which == "move":
            # Changes the partition key: the row moves to another partition.
            return f"UPDATE pt SET region = {lit(maybe(rng, 0.15, rng.randint(0, 8)))} WHERE id IN {target}"
        if which == "val":
            return f"UPDATE pt SET val = {lit(maybe(rng, 0.15, rng.randint(-3, 20)))} WHERE id IN {target}"
        return f"UPDATE pt SET tag = {lit(rng.choice(TAGS))}, region = region + 1 WHERE id IN {target}"

    def pt_delete(self):
        ids = sorted(set(self.ids("pt")))
        part = self.partition()
        if part:
            return f"DELETE FROM {part} WHERE id IN {self.in_list(sorted(self.pick(ids, self.rng.randint(1, 8))))}"
        if self.rng.random() < 0.04:
            return "DELETE FROM pt"  # empties the table through DELETE (differential path to empty)
        if self.rng.random() < 0.7:
            return f"DELETE FROM pt WHERE id IN {self.in_list(sorted(self.pick(ids, self.rng.randint(1, 6))))}"
        return f"DELETE FROM pt WHERE region IS NOT DISTINCT FROM {lit(maybe(self.rng, 0.2, self.rng.randint(0, 8)))} AND val < 5"

    # wide (dropped columns) ------------------------------------------------------------------------
    def wide_insert(self):
        rows = [self.val.wide_row(i) for i in self.fresh_ids(self.ids("wide"), self.rng.randint(1, 5), 1, 400)]
        return f"INSERT INTO wide (id, a, b, c) VALUES {values_list(rows)}"

    def wide_update(self):
        rng = self.rng
        target = self.in_list(sorted(self.pick(self.ids("wide"), rng.randint(1, 5))))
        which = rng.choice(["a", "b", "c", "key"])
        if which == "a":
            return f"UPDATE wide SET a = {lit(maybe(rng, 0.15, rng.randint(0, 9)))} WHERE id IN {target}"
        if which == "b":
            return f"UPDATE wide SET b = {lit(self.val.amount())} WHERE id IN {target}"
        if which == "c":
            return f"UPDATE wide SET c = {lit(rng.choice(TAGS))}, a = a + 1 WHERE id IN {target}"
        ids = self.ids("wide")
        old = sorted(self.pick(ids, rng.randint(1, 2)))
        new = self.fresh_ids(ids, len(old), 1, 400)
        cases = " ".join(f"WHEN {o} THEN {n}" for o, n in zip(old, new))
        return f"UPDATE wide SET id = CASE id {cases} END WHERE id IN {self.in_list(old)}"

    def wide_delete(self):
        return f"DELETE FROM wide WHERE id IN {self.in_list(sorted(self.pick(self.ids('wide'), self.rng.randint(1, 5))))}"

    # dim -------------------------------------------------------------------------------------------
    def dim_insert(self):
        ids = self.ids("dim", "d_id")
        free = [i for i in range(1, 13) if i not in ids]
        if not free:
            return self.dim_update()
        return f"INSERT INTO dim VALUES {row_lit(self.val.dim_row(self.rng.choice(free)))}"

    def dim_update(self):
        rng = self.rng
        ids = self.ids("dim", "d_id")
        d = rng.choice(ids)
        which = rng.choice(["label", "region", "weight", "key"])
        if which == "label":
            return f"UPDATE dim SET label = {lit(self.val.dim_row(d)[1])} WHERE d_id = {d}"
        if which == "region":
            return f"UPDATE dim SET region = {lit(rng.choice(REGIONS))} WHERE d_id = {d}"
        if which == "weight":
            return f"UPDATE dim SET weight = {rng.randint(0, 3)} WHERE d_id = {d}"
        free = [i for i in range(1, 13) if i not in ids]
        if not free:
            return f"UPDATE dim SET weight = weight + 1 WHERE d_id = {d}"
        return f"UPDATE dim SET d_id = {rng.choice(free)} WHERE d_id = {d}"

    def dim_delete(self):
        return f"DELETE FROM dim WHERE d_id = {self.rng.choice(self.ids('dim', 'd_id'))}"

    # --- whole transactions: lists of statements, with the expected outcome ---
    def truncate(self, table):
        """TRUNCATE and refill a little (in the same transaction)."""
        if table == "pt" and PARTITION_DML and self.rng.random() < 0.5:
            return [f"TRUNCATE {self.rng.choice(sorted(PARTITIONS))}"]  # one partition only
        stmts = [f"TRUNCATE {table}"]
        refill = {
            "bag": lambda: f"INSERT INTO bag VALUES {values_list([self.val.bag_row() for _ in range(30)])}",
            "pt": lambda: f"INSERT INTO pt VALUES {values_list([self.val.pt_row() for _ in range(30)])}",
            "t2": lambda: f"INSERT INTO t2 VALUES {values_list([self.val.t2_row(i, []) for i in sorted(self.rng.sample(range(1, 600), 40))])}",
            "dim": lambda: f"INSERT INTO dim VALUES {values_list([self.val.dim_row(i) for i in range(1, 7)])}",
            "wide": lambda: f"INSERT INTO wide (id, a, b, c) VALUES {values_list([self.val.wide_row(i) for i in range(1, 30)])}",
            "t1": lambda: f"INSERT INTO t1 VALUES {values_list([self.val.t1_row(i) for i in sorted(self.rng.sample(range(1, 400), 60))])}",
        }
        if self.rng.random() < 0.8:
            stmts.append(refill[table]())
        return stmts


def churn_statements(rng, val):
    """A transaction whose changes cancel out: rows inserted, updated (twice) and deleted again."""
    ids = sorted(rng.sample(range(1001, 1100), 3))
    rows = [val.t1_row(i) for i in ids]
    return [f"INSERT INTO t1 VALUES {values_list(rows)}",
            f"UPDATE t1 SET qty = 1, g = 4 WHERE id IN ({', '.join(map(str, ids))})",
            f"UPDATE t1 SET qty = qty + 1 WHERE id = {ids[0]}",
            f"DELETE FROM t1 WHERE id IN ({', '.join(map(str, ids))})",
            "INSERT INTO bag VALUES (42, 42, 'churn'), (42, 42, 'churn')",
            "DELETE FROM bag WHERE k = 42"]
