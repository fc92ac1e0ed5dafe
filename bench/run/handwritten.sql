-- kpi_results of the example project's six KPIs (models/kpis/*.yml), written
-- by hand the way an analyst would, as the baseline of bench/run_speed.sh
-- (bench/README.md, "Run speed"). examples/run_speed.rs runs these
-- statements in order on a fresh DuckDB connection and fetches the rows of
-- the last one; before timing, it checks that they equal kpic's kpi_results
-- on the same data.
--
-- Placeholders, filled in by examples/run_speed.rs:
--   {orders} {sessions} {customers} {support_tickets}
--                     read_parquet('…') of the generated data
--   {targets}         the quoted path of the project's fixtures/data/targets.csv
--                     (revenue_ytd and urgent_resolution_time targets, as kpic reads them)
--   {quarterly_plan}  the quoted path of a CSV (period, target) with the
--                     `target: values:` of quarterly_revenue (growth.yml)
--
-- The plan: read the time columns once for as_of, then read each source once
-- into a small rollup (per day, or per week for the quantile), then compute
-- every KPI from the rollups. The rules are SPEC §7's:
--   * as_of is `latest`: the latest day in the four sources;
--   * every KPI has a row per period, from the period of its source's first
--     row (unfiltered) to the period containing as_of, without gaps;
--   * the current period is incomplete when it ends after as_of + 1 day; its
--     `previous` and `last_year` then cover the same number of days from the
--     start of the comparison period ("like for like", the `l` columns
--     below); complete periods compare whole periods (the `v` columns);
--   * `last_year` of an ISO week is the same week of the previous ISO year;
--     of a month or quarter, the period starting one year earlier;
--   * projected: sums and counts (quarterly_revenue, monthly_new_customers)
--     are scaled by period days / elapsed days in the current period;
--     everything else is judged as it stands;
--   * relative targets use the whole comparison period.
--
-- Statements end with `;` at the end of a line; lines starting with `--` are
-- comments.

-- 0. as_of, and the first day of each source (where its KPIs' periods
--    start). Read first because the sessions scan needs as_of (step 2).
CREATE TEMP TABLE params AS
WITH a AS (
  SELECT
    (SELECT min(CAST(ordered_at AS DATE)) FROM {orders}) AS first_order,
    (SELECT max(CAST(ordered_at AS DATE)) FROM {orders}) AS last_order,
    (SELECT min(CAST(started_at AS DATE)) FROM {sessions}) AS first_session,
    (SELECT max(CAST(started_at AS DATE)) FROM {sessions}) AS last_session,
    (SELECT min(CAST(signup_date AS DATE)) FROM {customers}) AS first_signup,
    (SELECT max(CAST(signup_date AS DATE)) FROM {customers}) AS last_signup,
    (SELECT min(CAST(opened_at AS DATE)) FROM {support_tickets}) AS first_ticket,
    (SELECT max(CAST(opened_at AS DATE)) FROM {support_tickets}) AS last_ticket
), b AS (
  SELECT *, greatest(last_order, last_session, last_signup, last_ticket) AS as_of FROM a
), c AS (
  SELECT *,
    CAST(date_trunc('week', as_of) AS DATE) AS cur_week,
    -- elapsed days of the current period, per grain
    CAST(date_diff('day', CAST(date_trunc('week', as_of) AS DATE), as_of) + 1 AS INTEGER) AS e_week,
    CAST(date_diff('day', CAST(date_trunc('month', as_of) AS DATE), as_of) + 1 AS INTEGER) AS e_month,
    CAST(date_diff('day', CAST(date_trunc('quarter', as_of) AS DATE), as_of) + 1 AS INTEGER) AS e_quarter,
    -- Monday of ISO week 1 of the previous ISO year
    CAST(date_trunc('week', make_date(isoyear(as_of) - 1, 1, 4)) AS DATE) AS ly_week1
  FROM b
)
SELECT *,
  cur_week - 7 AS prev_week,
  -- the current week's number in the previous ISO year (NULL if it has no W53)
  CASE WHEN week(ly_week1 + 7 * CAST(week(as_of) - 1 AS INTEGER)) = week(as_of)
       THEN ly_week1 + 7 * CAST(week(as_of) - 1 AS INTEGER)
  END AS ly_week
FROM c;

-- 1. orders, one scan: the day, customer and net amount of completed orders
--    (quarterly_revenue, revenue_ytd and weekly_active_customers use only
--    completed orders).
CREATE TEMP TABLE completed_orders AS
SELECT CAST(ordered_at AS DATE) AS day, customer_id, amount - coalesce(discount, 0) AS net
FROM {orders}
WHERE status = 'completed';

-- 2. sessions, one scan: p90 load time per ISO week (p90_page_load), and the
--    like-for-like p90 (first e_week days) of the two weeks the current week
--    is compared with, needed only while the current week is incomplete.
CREATE TEMP TABLE session_weeks AS
SELECT CAST(date_trunc('week', started_at) AS DATE) AS ws,
  quantile_cont(load_ms, 0.9) AS p90,
  quantile_cont(load_ms, 0.9) FILTER (WHERE
    p.e_week < 7
    AND CAST(date_trunc('week', started_at) AS DATE) IN (p.prev_week, p.ly_week)
    AND CAST(started_at AS DATE) < CAST(date_trunc('week', started_at) AS DATE) + p.e_week) AS p90_lfl
FROM {sessions}, params AS p
GROUP BY 1;

-- 3. customers, one scan: sign-ups per day (monthly_new_customers).
CREATE TEMP TABLE customer_days AS
SELECT CAST(signup_date AS DATE) AS day, count(*) AS signups
FROM {customers}
GROUP BY 1;

-- 4. support tickets, one scan: hours and count of urgent tickets per day
--    (urgent_resolution_time: avg(resolution_hours) where priority = 'urgent').
--    The join to customers in sources.yml serves only the breakdowns.
CREATE TEMP TABLE ticket_days AS
SELECT CAST(opened_at AS DATE) AS day,
  sum(resolution_hours) FILTER (WHERE priority = 'urgent') AS urgent_hours,
  count(resolution_hours) FILTER (WHERE priority = 'urgent') AS urgent_tickets
FROM {support_tickets}
GROUP BY 1;

-- 5. kpi_results from the rollups.
WITH
-- The KPIs' fixed attributes (models/kpis/*.yml).
defs (kpi, label, metric, grain, direction, tolerance, indicator, owner) AS (VALUES
  ('revenue_ytd', 'Net revenue, year to date', 'revenue_ytd', 'month', 'higher_is_better', 0.1, 'lagging', 'finance'),
  ('quarterly_revenue', 'Quarterly net revenue', 'revenue', 'quarter', 'higher_is_better', 0.1, 'lagging', 'growth-team'),
  ('monthly_new_customers', 'New customers per month', 'new_customers', 'month', 'higher_is_better', 0.1, 'leading', 'growth-team'),
  ('weekly_active_customers', 'Active customers (30 days), weekly', 'active_customers_30d', 'week', 'higher_is_better', 0.1, 'leading', 'growth-team'),
  ('p90_page_load', 'Page load time, p90 (weekly)', 'p90_load_ms', 'week', 'lower_is_better', 0.05, 'leading', 'web-platform'),
  ('urgent_resolution_time', 'Urgent-ticket resolution time', 'avg_resolution_hours', 'month', 'lower_is_better', 0.1, 'lagging', 'customer-success')
),
-- Period spines: from the period of the source's first day to as_of's.
months_orders AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('month', first_order) AS DATE),
    CAST(date_trunc('month', as_of) AS DATE), INTERVAL 1 MONTH)) AS DATE) AS ps FROM params
),
quarters_orders AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('quarter', first_order) AS DATE),
    CAST(date_trunc('quarter', as_of) AS DATE), INTERVAL 3 MONTH)) AS DATE) AS ps FROM params
),
weeks_orders AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('week', first_order) AS DATE),
    cur_week, INTERVAL 7 DAY)) AS DATE) AS ps FROM params
),
weeks_sessions AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('week', first_session) AS DATE),
    cur_week, INTERVAL 7 DAY)) AS DATE) AS ps FROM params
),
months_customers AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('month', first_signup) AS DATE),
    CAST(date_trunc('month', as_of) AS DATE), INTERVAL 1 MONTH)) AS DATE) AS ps FROM params
),
months_tickets AS (
  SELECT CAST(unnest(generate_series(CAST(date_trunc('month', first_ticket) AS DATE),
    CAST(date_trunc('month', as_of) AS DATE), INTERVAL 1 MONTH)) AS DATE) AS ps FROM params
),
revenue_days AS (
  SELECT day, sum(net) AS revenue FROM completed_orders GROUP BY day
),
-- revenue_ytd: net revenue from January 1st to the end of the month; the
-- like-for-like value stops after e_month days of the month.
revenue_months AS (
  SELECT s.ps, coalesce(a.v, 0) AS m, coalesce(a.l, 0) AS ml
  FROM months_orders AS s LEFT JOIN (
    SELECT CAST(date_trunc('month', day) AS DATE) AS ps, sum(revenue) AS v,
      sum(revenue) FILTER (WHERE day < CAST(date_trunc('month', day) AS DATE) + (SELECT e_month FROM params)) AS l
    FROM revenue_days GROUP BY 1
  ) AS a USING (ps)
),
revenue_ytd AS (
  SELECT 'revenue_ytd' AS kpi, ps, sum(m) OVER y AS v, sum(m) OVER y - m + ml AS l,
    NULL::DOUBLE AS num, NULL::DOUBLE AS den
  FROM revenue_months
  WINDOW y AS (PARTITION BY year(ps) ORDER BY ps)
),
-- quarterly_revenue: net revenue of completed orders in the quarter.
quarterly_revenue AS (
  SELECT 'quarterly_revenue' AS kpi, s.ps, coalesce(a.v, 0) AS v, coalesce(a.l, 0) AS l,
    NULL::DOUBLE AS num, NULL::DOUBLE AS den
  FROM quarters_orders AS s LEFT JOIN (
    SELECT CAST(date_trunc('quarter', day) AS DATE) AS ps, sum(revenue) AS v,
      sum(revenue) FILTER (WHERE day < CAST(date_trunc('quarter', day) AS DATE) + (SELECT e_quarter FROM params)) AS l
    FROM revenue_days GROUP BY 1
  ) AS a USING (ps)
),
-- monthly_new_customers: sign-ups in the month.
monthly_new_customers AS (
  SELECT 'monthly_new_customers' AS kpi, s.ps, coalesce(a.v, 0) AS v, coalesce(a.l, 0) AS l,
    NULL::DOUBLE AS num, NULL::DOUBLE AS den
  FROM months_customers AS s LEFT JOIN (
    SELECT CAST(date_trunc('month', day) AS DATE) AS ps, sum(signups) AS v,
      sum(signups) FILTER (WHERE day < CAST(date_trunc('month', day) AS DATE) + (SELECT e_month FROM params)) AS l
    FROM customer_days GROUP BY 1
  ) AS a USING (ps)
),
-- weekly_active_customers: distinct buyers (completed orders) in the 30 days
-- before each week's end. Counting distinct customers per overlapping
-- window would fan every order out to ~5 windows; instead each customer is
-- counted once per window through their last order before the window's
-- end: an order on day d, the customer's next order on day n, counts in the
-- windows whose end E is in (d, least(d + 30, n)]. For the weeks' ends (the
-- Mondays) that is +1 at the first Monday after d and -1 a week after the
-- last Monday on or before least(d + 30, n); a running sum over the weeks
-- gives the counts.
active_edges AS (
  SELECT CAST(date_trunc('week', day) AS DATE) + 7 AS e_from,
    CAST(date_trunc('week', least(day + 30, coalesce(nxt, day + 30))) AS DATE) + 7 AS e_to
  FROM (SELECT day, lead(day) OVER (PARTITION BY customer_id ORDER BY day) AS nxt FROM completed_orders)
),
active_deltas AS (
  SELECT e, sum(d) AS d FROM (
    SELECT e_from AS e, 1 AS d FROM active_edges UNION ALL SELECT e_to, -1 FROM active_edges
  ) GROUP BY e
),
active_weeks AS (
  SELECT s.ps, sum(coalesce(a.d, 0)) OVER (ORDER BY s.ps) AS n
  FROM weeks_orders AS s LEFT JOIN active_deltas AS a ON a.e = s.ps + 7
),
-- Windows that do not end on a Monday, only while the current week is
-- incomplete: the current week's (ending at as_of + 1) and the like-for-
-- like windows of its two comparison weeks (ending e_week days into them).
active_partial AS (
  SELECT
    count(DISTINCT o.customer_id) FILTER (WHERE o.day >= p.as_of + 1 - 30) AS cur,
    count(DISTINCT o.customer_id) FILTER (WHERE o.day >= p.prev_week + p.e_week - 30 AND o.day < p.prev_week + p.e_week) AS prev_lfl,
    count(DISTINCT o.customer_id) FILTER (WHERE o.day >= p.ly_week + p.e_week - 30 AND o.day < p.ly_week + p.e_week) AS ly_lfl
  FROM completed_orders AS o, params AS p
  WHERE p.e_week < 7 AND (o.day >= p.as_of + 1 - 30
    OR (o.day >= p.prev_week + p.e_week - 30 AND o.day < p.prev_week + p.e_week)
    OR (o.day >= p.ly_week + p.e_week - 30 AND o.day < p.ly_week + p.e_week))
),
weekly_active_customers AS (
  SELECT 'weekly_active_customers' AS kpi, a.ps,
    CASE WHEN p.e_week < 7 AND a.ps = p.cur_week THEN x.cur ELSE a.n END AS v,
    CASE WHEN p.e_week < 7 AND a.ps = p.prev_week THEN x.prev_lfl
         WHEN p.e_week < 7 AND a.ps = p.ly_week THEN x.ly_lfl
         ELSE a.n END AS l,
    NULL::DOUBLE AS num, NULL::DOUBLE AS den
  FROM active_weeks AS a, params AS p, active_partial AS x
),
-- p90_page_load: NULL in a week without sessions.
p90_page_load AS (
  SELECT 'p90_page_load' AS kpi, s.ps, a.p90 AS v,
    CASE WHEN p.e_week < 7 AND s.ps IN (p.prev_week, p.ly_week) THEN a.p90_lfl ELSE a.p90 END AS l,
    NULL::DOUBLE AS num, NULL::DOUBLE AS den
  FROM weeks_sessions AS s CROSS JOIN params AS p LEFT JOIN session_weeks AS a ON a.ws = s.ps
),
-- urgent_resolution_time: avg(resolution_hours) of urgent tickets, NULL in a
-- month without any; numerator and denominator are its sum and count.
urgent_resolution_time AS (
  SELECT 'urgent_resolution_time' AS kpi, s.ps, a.h / nullif(a.n, 0) AS v, a.hl / nullif(a.nl, 0) AS l,
    coalesce(a.h, 0) AS num, coalesce(a.n, 0) AS den
  FROM months_tickets AS s LEFT JOIN (
    SELECT CAST(date_trunc('month', day) AS DATE) AS ps,
      sum(urgent_hours) AS h, sum(urgent_tickets) AS n,
      sum(urgent_hours) FILTER (WHERE day < CAST(date_trunc('month', day) AS DATE) + (SELECT e_month FROM params)) AS hl,
      sum(urgent_tickets) FILTER (WHERE day < CAST(date_trunc('month', day) AS DATE) + (SELECT e_month FROM params)) AS nl
    FROM ticket_days GROUP BY 1
  ) AS a USING (ps)
),
vals AS (
  SELECT v.*, d.grain,
    CASE d.grain WHEN 'week' THEN CAST(v.ps + 7 AS DATE)
                 WHEN 'month' THEN CAST(v.ps + INTERVAL 1 MONTH AS DATE)
                 ELSE CAST(v.ps + INTERVAL 3 MONTH AS DATE) END AS pe,
    -- the key of this period and of the same period last year
    CASE d.grain WHEN 'week' THEN isoyear(v.ps) * 100 + week(v.ps) ELSE year(v.ps) * 100 + month(v.ps) END AS yk,
    CASE d.grain WHEN 'week' THEN (isoyear(v.ps) - 1) * 100 + week(v.ps) ELSE (year(v.ps) - 1) * 100 + month(v.ps) END AS lyk
  FROM (
    SELECT * FROM revenue_ytd UNION ALL SELECT * FROM quarterly_revenue
    UNION ALL SELECT * FROM monthly_new_customers UNION ALL SELECT * FROM weekly_active_customers
    UNION ALL SELECT * FROM p90_page_load UNION ALL SELECT * FROM urgent_resolution_time
  ) AS v JOIN defs AS d USING (kpi)
),
cmp AS (
  SELECT c.*, p.as_of,
    c.pe <= p.as_of + 1 AS is_complete,
    lag(c.v) OVER k AS pv, lag(c.l) OVER k AS pl, ly.v AS yv, ly.l AS yl
  FROM vals AS c CROSS JOIN params AS p
  LEFT JOIN vals AS ly ON ly.kpi = c.kpi AND ly.yk = c.lyk
  WINDOW k AS (PARTITION BY c.kpi ORDER BY c.ps)
),
file_targets AS (
  SELECT kpi, period, CAST(target AS DOUBLE) AS target FROM read_csv({targets}, all_varchar = true)
  UNION ALL
  SELECT 'quarterly_revenue', period, CAST(target AS DOUBLE) FROM read_csv({quarterly_plan}, all_varchar = true)
),
res AS (
  SELECT c.kpi, d.label, d.metric, d.grain,
    CASE d.grain WHEN 'week' THEN concat(isoyear(c.ps), '-W', lpad(CAST(week(c.ps) AS VARCHAR), 2, '0'))
                 WHEN 'month' THEN strftime(c.ps, '%Y-%m')
                 ELSE concat(year(c.ps), '-Q', quarter(c.ps)) END AS period,
    c.ps AS period_start, c.pe AS period_end, c.is_complete,
    CAST(c.v AS DOUBLE) AS actual,
    CAST(CASE WHEN c.is_complete OR c.kpi NOT IN ('quarterly_revenue', 'monthly_new_customers') THEN c.v
         ELSE (c.v * CAST(date_diff('day', c.ps, c.pe) AS DOUBLE)) / CAST(date_diff('day', c.ps, c.as_of) + 1 AS DOUBLE)
    END AS DOUBLE) AS projected,
    CAST(CASE WHEN c.is_complete THEN c.pv ELSE c.pl END AS DOUBLE) AS previous,
    CAST(CASE WHEN c.is_complete THEN c.yv ELSE c.yl END AS DOUBLE) AS last_year,
    CAST(CASE c.kpi
      WHEN 'monthly_new_customers' THEN c.yv * 1.15        -- change +15% vs last_year
      WHEN 'weekly_active_customers' THEN c.pv * 0.9       -- change -10% vs previous
      WHEN 'p90_page_load' THEN 2000
      ELSE t.target                                        -- targets.csv, the quarterly plan
    END AS DOUBLE) AS target,
    c.num AS numerator, c.den AS denominator,
    d.direction, d.tolerance, d.indicator, d.owner
  FROM cmp AS c JOIN defs AS d USING (kpi)
  LEFT JOIN file_targets AS t ON t.kpi = c.kpi
    AND t.period = CASE d.grain WHEN 'month' THEN strftime(c.ps, '%Y-%m') ELSE concat(year(c.ps), '-Q', quarter(c.ps)) END
)
SELECT kpi, label, metric, grain, period, period_start, period_end, is_complete,
  actual, target, actual / nullif(target, 0) AS attainment,
  CASE
    WHEN target IS NULL THEN 'no_target'
    WHEN projected IS NULL THEN 'no_data'
    WHEN direction = 'higher_is_better' AND projected >= target THEN 'on_track'
    WHEN direction = 'higher_is_better' AND projected >= target * (1 - tolerance) THEN 'at_risk'
    WHEN direction = 'lower_is_better' AND projected <= target THEN 'on_track'
    WHEN direction = 'lower_is_better' AND projected <= target * (1 + tolerance) THEN 'at_risk'
    ELSE 'off_track'
  END AS status,
  projected, previous, actual - previous AS change, (actual - previous) / nullif(previous, 0) AS change_pct,
  last_year, (actual - last_year) / nullif(last_year, 0) AS yoy_change_pct,
  numerator, denominator, direction, indicator, owner
FROM res
ORDER BY kpi, period_start;
