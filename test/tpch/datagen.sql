-- Deterministic TPC-H data generator and change cycles, in SQL (PostgreSQL 18).
--
--   \i test/tpch/schema.sql
--   \i test/tpch/datagen.sql
--   SELECT tpchgen.load(0.01);          -- scale factor (default seed 5); then ANALYZE
--   SELECT tpchgen.change_cycle(1);     -- RF1 + RF2 + ~1 % updates, cycle 1 (also rf1/rf2/updates)
--
-- Everything lives in schema tpchgen, except the eight tables (created by schema.sql in the current
-- schema). Values follow TPC-H 2.x/3.x clause 4.2.3 (see test/tpch/README.md for the differences).
-- Pseudo-randomness is a hash of (row key, stream): tpchgen.rnd(k, stream) is a function of its
-- arguments only, so the data depend on the scale factor and seed alone, not on plans, parallelism or
-- the order rows are produced in.
DROP SCHEMA IF EXISTS tpchgen CASCADE;
CREATE SCHEMA tpchgen;

-- Uniform in [0, 1): 53 bits of hashint8extended(k, stream).
CREATE FUNCTION tpchgen.rnd(k bigint, stream bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((hashint8extended(k, stream) >> 11) & 9007199254740991)::float8 / 9007199254740992.0
$$;

-- Uniform integer in [lo, hi].
CREATE FUNCTION tpchgen.uni(k bigint, stream bigint, lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lo + floor(tpchgen.rnd(k, stream) * (hi - lo + 1))::bigint
$$;

-- One element of a list, uniformly.
CREATE FUNCTION tpchgen.pick(list text[], k bigint, stream bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT list[1 + floor(tpchgen.rnd(k, stream) * cardinality(list))::int]
$$;

-- ---------------------------------------------------------------------------------------------
-- Word lists (clause 4.2.2.13 and 4.2.3)
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION tpchgen.w_noun(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{foxes,ideas,theodolites,"pinto beans",instructions,dependencies,excuses,platelets,asymptotes,courts,dolphins,multipliers,sauternes,warthogs,frets,dinos,attainments,somas,Tiresias,patterns,forges,braids,"hockey players",frays,warhorses,dugouts,notornis,epitaphs,pearls,tithes,waters,orbits,gifts,sheaves,depths,sentiments,decoys,realms,pains,grouches,escapades,packages,requests,accounts,deposits}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_verb(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{sleep,wake,are,cajole,haggle,nag,use,boost,affix,detect,integrate,maintain,nod,was,lose,sublate,solve,thrash,promise,engage,hinder,print,x-ray,breach,eat,grow,impress,mold,poach,serve,run,dazzle,snooze,doze,unwind,kindle,play,hang,believe,doubt}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_adj(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{special,pending,unusual,express,furious,sly,careful,blithe,quick,fluffy,slow,quiet,ruthless,thin,close,dogged,daring,brave,stealthy,permanent,enticing,idle,busy,regular,final,ironic,even,bold,silent}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_adv(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{sometimes,always,never,furiously,slyly,carefully,blithely,quickly,fluffily,slowly,quietly,ruthlessly,thinly,closely,doggedly,daringly,bravely,stealthily,permanently,enticingly,idly,busily,regularly,finally,ironically,evenly,boldly,silently}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_prep(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{about,above,"according to",across,after,against,along,"alongside of",among,around,at,atop,before,behind,beneath,beside,besides,between,beyond,by,despite,during,except,for,from,"in place of",inside,"instead of",into,near,of,on,outside,over,past,since,through,throughout,to,toward,under,until,up,upon,without,with,within}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_aux(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{do,may,might,shall,will,would,can,could,should,"ought to",must,"will have to","shall have to","could have to","should have to","must have to","need to","try to"}'::text[], k, s)
$$;
CREATE FUNCTION tpchgen.w_term(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{.,;,:,?,!,--}'::text[], k, s)
$$;

-- One sentence of the comment grammar (a simplified version of clause 4.2.2.14).
CREATE FUNCTION tpchgen.sentence(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE tpchgen.uni(k, s, 0, 3)
        WHEN 0 THEN tpchgen.w_adj(k, s + 1) || ' ' || tpchgen.w_noun(k, s + 2) || ' ' || tpchgen.w_verb(k, s + 3)
                    || ' ' || tpchgen.w_adv(k, s + 4) || tpchgen.w_term(k, s + 9)
        WHEN 1 THEN tpchgen.w_adj(k, s + 1) || ' ' || tpchgen.w_noun(k, s + 2) || ' ' || tpchgen.w_verb(k, s + 3)
                    || ' ' || tpchgen.w_prep(k, s + 4) || ' the ' || tpchgen.w_adj(k, s + 5) || ' '
                    || tpchgen.w_noun(k, s + 6) || tpchgen.w_term(k, s + 9)
        WHEN 2 THEN tpchgen.w_adv(k, s + 1) || ' ' || tpchgen.w_adj(k, s + 2) || ' ' || tpchgen.w_noun(k, s + 3)
                    || ' ' || tpchgen.w_aux(k, s + 4) || ' ' || tpchgen.w_verb(k, s + 5) || ' '
                    || tpchgen.w_adv(k, s + 6) || tpchgen.w_term(k, s + 9)
        ELSE tpchgen.w_noun(k, s + 1) || ' ' || tpchgen.w_verb(k, s + 2) || ' ' || tpchgen.w_adv(k, s + 3)
                    || ' ' || tpchgen.w_prep(k, s + 4) || ' the ' || tpchgen.w_adj(k, s + 5) || ' '
                    || tpchgen.w_noun(k, s + 6) || tpchgen.w_term(k, s + 9)
    END
$$;

-- Text of random length in [minlen, maxlen] (clause 4.2.2.10: a text string of mean length L has a
-- length in [0.4 L, 1.6 L]), made of grammar sentences.
CREATE FUNCTION tpchgen.txt(k bigint, s bigint, minlen int, maxlen int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(CASE
            WHEN maxlen <= 45 THEN tpchgen.sentence(k, s) || ' ' || tpchgen.sentence(k, s + 10)
            WHEN maxlen <= 120 THEN tpchgen.sentence(k, s) || ' ' || tpchgen.sentence(k, s + 10) || ' '
                                   || tpchgen.sentence(k, s + 20) || ' ' || tpchgen.sentence(k, s + 30)
            ELSE tpchgen.sentence(k, s) || ' ' || tpchgen.sentence(k, s + 10) || ' ' || tpchgen.sentence(k, s + 20)
                 || ' ' || tpchgen.sentence(k, s + 30) || ' ' || tpchgen.sentence(k, s + 40) || ' '
                 || tpchgen.sentence(k, s + 50) || ' ' || tpchgen.sentence(k, s + 60)
        END, (minlen + tpchgen.uni(k, s + 99, 0, maxlen - minlen))::int)
$$;

-- Random string of length [minlen, maxlen] (addresses; clause 4.2.2.7 uses 64 symbols, here 36).
CREATE FUNCTION tpchgen.vstr(k bigint, s bigint, minlen int, maxlen int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(translate(md5(k::text || ':' || s::text) || md5(s::text || ':' || k::text),
                          '0123456789abcdef', 'q1w2e3r4tYuIoPaS'),
                (minlen + tpchgen.uni(k, s + 1, 0, maxlen - minlen))::int)
$$;

-- Phone number: country code = nation key + 10 (clause 4.2.2.9).
CREATE FUNCTION tpchgen.phone(nationkey int, k bigint, s bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (nationkey + 10)::text || '-' || tpchgen.uni(k, s, 100, 999) || '-' || tpchgen.uni(k, s + 1, 100, 999)
           || '-' || tpchgen.uni(k, s + 2, 1000, 9999)
$$;

-- P_RETAILPRICE (clause 4.2.3).
CREATE FUNCTION tpchgen.retailprice(partkey bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((90000 + ((partkey / 10) % 20001) + 100 * (partkey % 1000)) / 100.0)::numeric(15,2)
$$;

-- The i-th (0..3) supplier of a part (clause 4.2.3, PS_SUPPKEY).
CREATE FUNCTION tpchgen.suppkey(partkey bigint, i bigint, nsupp bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((partkey + i * (nsupp / 4 + (partkey - 1) / nsupp)) % nsupp + 1)::integer
$$;

-- Order key of the n-th order (1-based): only the first 8 of every 32 keys are used (clause 4.2.3).
CREATE FUNCTION tpchgen.orderkey(n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((n - 1) / 8) * 32 + (n - 1) % 8 + 1
$$;

-- P_NAME: five distinct colours out of 92.
CREATE FUNCTION tpchgen.p_name(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT c[1 + st % 92] || ' ' || c[1 + (st + sp) % 92] || ' ' || c[1 + (st + 2 * sp) % 92] || ' '
           || c[1 + (st + 3 * sp) % 92] || ' ' || c[1 + (st + 4 * sp) % 92]
    FROM (SELECT '{almond,antique,aquamarine,azure,beige,bisque,black,blanched,blue,blush,brown,burlywood,burnished,chartreuse,chiffon,chocolate,coral,cornflower,cornsilk,cream,cyan,dark,deep,dim,dodger,drab,firebrick,floral,forest,frosted,gainsboro,ghost,goldenrod,green,grey,honeydew,hot,indian,ivory,khaki,lace,lavender,lawn,lemon,light,lime,linen,magenta,maroon,medium,metallic,midnight,mint,misty,moccasin,navajo,navy,olive,orange,orchid,pale,papaya,peach,peru,pink,plum,powder,puff,purple,red,rose,rosy,royal,saddle,salmon,sandy,seashell,sienna,sky,slate,smoke,snow,spring,steel,tan,thistle,tomato,turquoise,violet,wheat,white,yellow}'::text[] AS c,
                 tpchgen.uni(k, s, 0, 91) AS st,
                 -- a step coprime with 92 = 4 * 23 makes the five colours distinct
                 (SELECT CASE WHEN x % 23 = 0 THEN x + 2 ELSE x END FROM (SELECT 1 + 2 * tpchgen.uni(k, s + 1, 0, 44) AS x) y) AS sp) z
$$;

CREATE FUNCTION tpchgen.p_type(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{STANDARD,SMALL,MEDIUM,LARGE,ECONOMY,PROMO}', k, s) || ' '
           || tpchgen.pick('{ANODIZED,BURNISHED,PLATED,POLISHED,BRUSHED}', k, s + 1) || ' '
           || tpchgen.pick('{TIN,NICKEL,BRASS,STEEL,COPPER}', k, s + 2)
$$;

CREATE FUNCTION tpchgen.p_container(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{SM,LG,MED,JUMBO,WRAP}', k, s) || ' '
           || tpchgen.pick('{CASE,BOX,BAG,JAR,PKG,PACK,CAN,DRUM}', k, s + 1)
$$;

CREATE FUNCTION tpchgen.segment(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{AUTOMOBILE,BUILDING,FURNITURE,MACHINERY,HOUSEHOLD}', k, s)
$$;

CREATE FUNCTION tpchgen.priority(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{1-URGENT,2-HIGH,3-MEDIUM,4-NOT SPECIFIED,5-LOW}', k, s)
$$;

CREATE FUNCTION tpchgen.shipinstruct(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{DELIVER IN PERSON,COLLECT COD,NONE,TAKE BACK RETURN}', k, s)
$$;

CREATE FUNCTION tpchgen.shipmode(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tpchgen.pick('{REG AIR,AIR,RAIL,SHIP,TRUCK,MAIL,FOB}', k, s)
$$;

-- S_COMMENT: about 0.5 % of suppliers get "Customer ... Complaints", 0.5 % "Customer ... Recommends"
-- (clause 4.2.3 puts SF * 5 of each in; at small scale factors that would be none).
CREATE FUNCTION tpchgen.s_comment(k bigint, s bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN r < 0.01 THEN
                left(tpchgen.txt(k, s + 10, 0, 30) || ' Customer ' || tpchgen.txt(k, s + 20, 0, 20)
                     || CASE WHEN r < 0.005 THEN ' Complaints ' ELSE ' Recommends ' END
                     || tpchgen.txt(k, s + 30, 20, 40), 100)
            ELSE tpchgen.txt(k, s + 40, 25, 100) END
    FROM (SELECT tpchgen.rnd(k, s) AS r) x
$$;

-- ---------------------------------------------------------------------------------------------
-- Configuration of the loaded database (one row)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tpchgen.config (
    sf         numeric NOT NULL,
    seed       integer NOT NULL,
    n_part     bigint NOT NULL,
    n_supplier bigint NOT NULL,
    n_customer bigint NOT NULL,
    n_orders   bigint NOT NULL,   -- orders of the initial population
    n_change   bigint NOT NULL    -- orders inserted by RF1 / deleted by RF2 per cycle (0.1 %)
);

-- Streams: tpchgen.stream(seed, cycle, id); cycle 0 is the initial load.
CREATE FUNCTION tpchgen.stream(seed integer, cycle integer, id integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT seed::bigint * 1000000 + cycle::bigint * 1000 + id
$$;

-- Orders n_from..n_to (positions in the order sequence) with their lineitems. `s` is the stream base.
CREATE FUNCTION tpchgen.gen_orders(n_from bigint, n_to bigint, s bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cfg tpchgen.config;
BEGIN
    SELECT * INTO STRICT cfg FROM tpchgen.config;
    CREATE TEMP TABLE tpchgen_new_orders ON COMMIT DROP AS
    SELECT tpchgen.orderkey(n) AS o_orderkey,
           -- customers whose key is a multiple of 3 never order (clause 4.2.3)
           (3 * tpchgen.uni(k, s + 1, 0, cfg.n_customer / 3 - 1) + 1 + tpchgen.uni(k, s + 2, 0, 1))::int AS o_custkey,
           date '1992-01-01' + tpchgen.uni(k, s + 3, 0, (date '1998-12-31' - 151) - date '1992-01-01')::int AS o_orderdate,
           tpchgen.priority(k, s + 4) AS o_orderpriority,
           'Clerk#' || lpad(tpchgen.uni(k, s + 5, 1, greatest(1, round(cfg.sf * 1000)::bigint))::text, 9, '0') AS o_clerk,
           tpchgen.txt(k, s + 100, 19, 78) AS o_comment,
           tpchgen.uni(k, s + 6, 1, 7)::int AS nlines
    FROM generate_series(n_from, n_to) n, LATERAL (SELECT tpchgen.orderkey(n) AS k) kk;

    INSERT INTO lineitem
    SELECT o_orderkey, partkey, tpchgen.suppkey(partkey, tpchgen.uni(lk, s + 12, 0, 3), cfg.n_supplier),
           l, qty, qty * tpchgen.retailprice(partkey),
           tpchgen.uni(lk, s + 13, 0, 10) / 100.0, tpchgen.uni(lk, s + 14, 0, 8) / 100.0,
           CASE WHEN receipt <= date '1995-06-17' THEN CASE WHEN tpchgen.rnd(lk, s + 15) < 0.5 THEN 'R' ELSE 'A' END
                ELSE 'N' END,
           CASE WHEN ship > date '1995-06-17' THEN 'O' ELSE 'F' END,
           ship, o_orderdate + tpchgen.uni(lk, s + 16, 30, 90)::int, receipt,
           tpchgen.shipinstruct(lk, s + 17), tpchgen.shipmode(lk, s + 18), tpchgen.txt(lk, s + 200, 10, 43)
    FROM tpchgen_new_orders o, generate_series(1, o.nlines) l,
         LATERAL (SELECT o.o_orderkey * 8 + l AS lk) a,
         LATERAL (SELECT tpchgen.uni(lk, s + 11, 1, cfg.n_part) AS partkey, tpchgen.uni(lk, s + 19, 1, 50) AS qty,
                         o.o_orderdate + tpchgen.uni(lk, s + 20, 1, 121)::int AS ship) b,
         LATERAL (SELECT ship + tpchgen.uni(lk, s + 21, 1, 30)::int AS receipt) c;

    INSERT INTO orders
    SELECT o.o_orderkey, o.o_custkey, t.status, t.total, o.o_orderdate, o.o_orderpriority, o.o_clerk, 0, o.o_comment
    FROM tpchgen_new_orders o
    JOIN (SELECT l_orderkey,
                 CASE WHEN bool_and(l_linestatus = 'F') THEN 'F' WHEN bool_and(l_linestatus = 'O') THEN 'O' ELSE 'P' END AS status,
                 round(sum(l_extendedprice * (1 + l_tax) * (1 - l_discount)), 2) AS total
          FROM lineitem
          WHERE l_orderkey BETWEEN tpchgen.orderkey(n_from) AND tpchgen.orderkey(n_to)
          GROUP BY l_orderkey) t ON t.l_orderkey = o.o_orderkey;
    DROP TABLE tpchgen_new_orders;
END
$$;

-- Loads all eight tables (which must exist and be empty) at scale factor `sf`.
CREATE FUNCTION tpchgen.load(sf numeric, seed integer DEFAULT 5) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n_part bigint := round(200000 * sf);
    n_supp bigint := round(10000 * sf);
    n_cust bigint := round(150000 * sf);
    n_ord bigint := round(1500000 * sf);
    s bigint := tpchgen.stream(seed, 0, 0);
BEGIN
    IF n_supp < 4 OR n_cust < 3 THEN
        RAISE EXCEPTION 'scale factor % is too small', sf;
    END IF;
    -- The specification's PS_SUPPKEY formula gives some part the same supplier twice for a few
    -- supplier counts (fewer than 77; multiples of 3 up to 228): e.g. SF 0.002 or 0.012.
    IF EXISTS (SELECT FROM generate_series(1, n_part) p, generate_series(0, 3) i
               GROUP BY p, tpchgen.suppkey(p, i, n_supp) HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'scale factor %: the specification''s PS_SUPPKEY formula gives a part the same supplier twice', sf
            USING HINT = 'Use a scale factor such as 0.01, 0.1 or 1.';
    END IF;
    DELETE FROM tpchgen.config;
    INSERT INTO tpchgen.config VALUES (sf, seed, n_part, n_supp, n_cust, n_ord, greatest(1, round(n_ord * 0.001)));

    INSERT INTO region
    SELECT r, name, tpchgen.txt(r, s + 1, 31, 115)
    FROM unnest('{AFRICA,AMERICA,ASIA,EUROPE,MIDDLE EAST}'::text[]) WITH ORDINALITY AS x(name, o), LATERAL (SELECT o - 1 AS r) y;

    INSERT INTO nation
    SELECT n, name, region, tpchgen.txt(n, s + 2, 31, 114)
    FROM (VALUES (0, 'ALGERIA', 0), (1, 'ARGENTINA', 1), (2, 'BRAZIL', 1), (3, 'CANADA', 1), (4, 'EGYPT', 4),
                 (5, 'ETHIOPIA', 0), (6, 'FRANCE', 3), (7, 'GERMANY', 3), (8, 'INDIA', 2), (9, 'INDONESIA', 2),
                 (10, 'IRAN', 4), (11, 'IRAQ', 4), (12, 'JAPAN', 2), (13, 'JORDAN', 4), (14, 'KENYA', 0),
                 (15, 'MOROCCO', 0), (16, 'MOZAMBIQUE', 0), (17, 'PERU', 1), (18, 'CHINA', 2), (19, 'ROMANIA', 3),
                 (20, 'SAUDI ARABIA', 4), (21, 'VIETNAM', 2), (22, 'RUSSIA', 3), (23, 'UNITED KINGDOM', 3),
                 (24, 'UNITED STATES', 1)) v(n, name, region);

    INSERT INTO part
    SELECT p, tpchgen.p_name(p, s + 10), 'Manufacturer#' || m, 'Brand#' || m || tpchgen.uni(p, s + 12, 1, 5),
           tpchgen.p_type(p, s + 13), tpchgen.uni(p, s + 16, 1, 50), tpchgen.p_container(p, s + 17),
           tpchgen.retailprice(p), tpchgen.txt(p, s + 300, 5, 22)
    FROM generate_series(1, n_part) p, LATERAL (SELECT tpchgen.uni(p, s + 11, 1, 5) AS m) x;

    INSERT INTO supplier
    SELECT k, 'Supplier#' || lpad(k::text, 9, '0'), tpchgen.vstr(k, s + 20, 10, 40), nk,
           tpchgen.phone(nk, k, s + 22), tpchgen.uni(k, s + 25, -99999, 999999) / 100.0, tpchgen.s_comment(k, s + 400)
    FROM generate_series(1, n_supp) k, LATERAL (SELECT tpchgen.uni(k, s + 21, 0, 24)::int AS nk) x;

    INSERT INTO partsupp
    SELECT p, tpchgen.suppkey(p, i, n_supp), tpchgen.uni(p * 4 + i, s + 30, 1, 9999),
           tpchgen.uni(p * 4 + i, s + 31, 100, 100000) / 100.0, tpchgen.txt(p * 4 + i, s + 500, 49, 198)
    FROM generate_series(1, n_part) p, generate_series(0, 3) i;

    INSERT INTO customer
    SELECT k, 'Customer#' || lpad(k::text, 9, '0'), tpchgen.vstr(k, s + 40, 10, 40), nk,
           tpchgen.phone(nk, k, s + 42), tpchgen.uni(k, s + 45, -99999, 999999) / 100.0, tpchgen.segment(k, s + 46),
           tpchgen.txt(k, s + 600, 29, 116)
    FROM generate_series(1, n_cust) k, LATERAL (SELECT tpchgen.uni(k, s + 41, 0, 24)::int AS nk) x;

    PERFORM tpchgen.gen_orders(1, n_ord, s + 700);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Change cycles (deterministic per cycle number, cycles numbered from 1)
-- ---------------------------------------------------------------------------------------------

-- RF1: new orders (0.1 % of the initial population) with their lineitems, with keys after every
-- existing one.
CREATE FUNCTION tpchgen.rf1(cycle integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cfg tpchgen.config;
BEGIN
    SELECT * INTO STRICT cfg FROM tpchgen.config;
    PERFORM tpchgen.gen_orders(cfg.n_orders + (cycle - 1) * cfg.n_change + 1, cfg.n_orders + cycle * cfg.n_change,
                               tpchgen.stream(cfg.seed, cycle, 700));
END
$$;

-- RF2: deletes 0.1 % of the initial orders (the oldest keys not yet deleted) with their lineitems.
CREATE FUNCTION tpchgen.rf2(cycle integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cfg tpchgen.config;
    lo bigint;
    hi bigint;
BEGIN
    SELECT * INTO STRICT cfg FROM tpchgen.config;
    lo := tpchgen.orderkey((cycle - 1) * cfg.n_change + 1);
    hi := tpchgen.orderkey(cycle * cfg.n_change);
    DELETE FROM lineitem WHERE l_orderkey BETWEEN lo AND hi;
    DELETE FROM orders WHERE o_orderkey BETWEEN lo AND hi;
END
$$;

-- Updates of about 1 % (`fraction`) of the rows of orders (with their lineitems), customer, part, partsupp and
-- supplier, in the columns the queries read: dates, priorities, discounts, quantities, prices,
-- ship modes, segments, nations, balances, brands, types, sizes, containers, names, costs, comments.
CREATE FUNCTION tpchgen.updates(cycle integer, fraction float8 DEFAULT 0.01) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cfg tpchgen.config;
    s bigint;
BEGIN
    SELECT * INTO STRICT cfg FROM tpchgen.config;
    s := tpchgen.stream(cfg.seed, cycle, 0);

    -- orders: a date shift of -45..45 days (their lineitems' dates move with it), new discounts,
    -- quantities (and extended prices), ship modes; then total price and status follow.
    CREATE TEMP TABLE tpchgen_upd_orders ON COMMIT DROP AS
    SELECT o_orderkey, tpchgen.uni(o_orderkey, s + 1, -45, 45)::int AS shift
    FROM orders WHERE tpchgen.rnd(o_orderkey, s) < fraction;

    UPDATE lineitem l
    SET l_quantity = tpchgen.uni(l.l_orderkey * 8 + l.l_linenumber, s + 2, 1, 50),
        l_extendedprice = tpchgen.uni(l.l_orderkey * 8 + l.l_linenumber, s + 2, 1, 50) * tpchgen.retailprice(l.l_partkey),
        l_discount = tpchgen.uni(l.l_orderkey * 8 + l.l_linenumber, s + 3, 0, 10) / 100.0,
        l_shipmode = tpchgen.shipmode(l.l_orderkey * 8 + l.l_linenumber, s + 4),
        l_shipdate = l.l_shipdate + u.shift,
        l_commitdate = l.l_commitdate + u.shift,
        l_receiptdate = l.l_receiptdate + u.shift,
        l_returnflag = CASE WHEN l.l_receiptdate + u.shift <= date '1995-06-17'
                            THEN CASE WHEN tpchgen.rnd(l.l_orderkey * 8 + l.l_linenumber, s + 5) < 0.5 THEN 'R' ELSE 'A' END
                            ELSE 'N' END,
        l_linestatus = CASE WHEN l.l_shipdate + u.shift > date '1995-06-17' THEN 'O' ELSE 'F' END
    FROM tpchgen_upd_orders u
    WHERE l.l_orderkey = u.o_orderkey;

    UPDATE orders o
    SET o_orderdate = o.o_orderdate + u.shift,
        o_orderpriority = tpchgen.priority(o.o_orderkey, s + 6),
        o_comment = tpchgen.txt(o.o_orderkey, s + 100, 19, 78),
        o_totalprice = t.total,
        o_orderstatus = t.status
    FROM tpchgen_upd_orders u
    JOIN (SELECT l_orderkey,
                 CASE WHEN bool_and(l_linestatus = 'F') THEN 'F' WHEN bool_and(l_linestatus = 'O') THEN 'O' ELSE 'P' END AS status,
                 round(sum(l_extendedprice * (1 + l_tax) * (1 - l_discount)), 2) AS total
          FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM tpchgen_upd_orders) GROUP BY l_orderkey) t
      ON t.l_orderkey = u.o_orderkey
    WHERE o.o_orderkey = u.o_orderkey;
    DROP TABLE tpchgen_upd_orders;

    UPDATE customer
    SET c_nationkey = nk,
        c_phone = tpchgen.phone(nk, c_custkey, s + 21),
        c_acctbal = tpchgen.uni(c_custkey, s + 24, -99999, 999999) / 100.0,
        c_mktsegment = tpchgen.segment(c_custkey, s + 25),
        c_comment = tpchgen.txt(c_custkey, s + 200, 29, 116)
    FROM (SELECT k, tpchgen.uni(k, s + 20, 0, 24)::int AS nk FROM generate_series(1, cfg.n_customer) k) x
    WHERE c_custkey = x.k AND tpchgen.rnd(c_custkey, s + 19) < fraction;

    UPDATE part
    SET p_name = tpchgen.p_name(p_partkey, s + 30),
        p_mfgr = 'Manufacturer#' || m,
        p_brand = 'Brand#' || m || tpchgen.uni(p_partkey, s + 33, 1, 5),
        p_type = tpchgen.p_type(p_partkey, s + 34),
        p_size = tpchgen.uni(p_partkey, s + 37, 1, 50),
        p_container = tpchgen.p_container(p_partkey, s + 38),
        p_comment = tpchgen.txt(p_partkey, s + 300, 5, 22)
    FROM (SELECT k, tpchgen.uni(k, s + 32, 1, 5) AS m FROM generate_series(1, cfg.n_part) k) x
    WHERE p_partkey = x.k AND tpchgen.rnd(p_partkey, s + 29) < fraction;

    UPDATE partsupp
    SET ps_availqty = tpchgen.uni(ps_partkey::bigint * 1000003 + ps_suppkey, s + 41, 1, 9999),
        ps_supplycost = tpchgen.uni(ps_partkey::bigint * 1000003 + ps_suppkey, s + 42, 100, 100000) / 100.0,
        ps_comment = tpchgen.txt(ps_partkey::bigint * 1000003 + ps_suppkey, s + 400, 49, 198)
    WHERE tpchgen.rnd(ps_partkey::bigint * 1000003 + ps_suppkey, s + 40) < fraction;

    UPDATE supplier
    SET s_nationkey = nk,
        s_phone = tpchgen.phone(nk, s_suppkey, s + 51),
        s_acctbal = tpchgen.uni(s_suppkey, s + 54, -99999, 999999) / 100.0,
        s_comment = tpchgen.s_comment(s_suppkey, s + 500)
    FROM (SELECT k, tpchgen.uni(k, s + 50, 0, 24)::int AS nk FROM generate_series(1, cfg.n_supplier) k) x
    WHERE s_suppkey = x.k AND tpchgen.rnd(s_suppkey, s + 49) < fraction;
END
$$;

-- One whole cycle in one transaction.
CREATE FUNCTION tpchgen.change_cycle(cycle integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tpchgen.rf1(cycle);
    PERFORM tpchgen.rf2(cycle);
    PERFORM tpchgen.updates(cycle);
END
$$;
