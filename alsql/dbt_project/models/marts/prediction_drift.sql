-- Class distribution of predictions compared between neighbours, one row per
-- comparison x class, with the Population Stability Index per class and in total:
--   comparison = 'model_version':  each model version against the one before it
--                                  (same project), over all the items each predicted;
--   comparison = 'captured_month': the latest model's predictions on items captured in
--                                  one month against the month before (months with data).
-- PSI = sum over classes of (compared - baseline) * ln(compared / baseline), shares
-- floored at var('psi_epsilon'). Rule of thumb: < 0.1 stable, > 0.25 shifted.
{% set eps = var('psi_epsilon') %}
with classes as (
    select * from {{ ref('stg_classes') }}
),

models as (
    select
        model_id,
        project_id,
        row_number() over (partition by project_id order by created_at, model_id) as version_number
    from {{ ref('stg_model_versions') }} as mv
    -- only models that predicted: one still training has no distribution yet (an
    -- existence probe of the predictions key; the view itself, not a CTE named twice,
    -- which SQLite would copy whole into a temporary table to probe it)
    where exists (select 1 from {{ ref('stg_predictions') }} as p where p.model_id = mv.model_id)
),

-- Every model's predictions are read once, here, and counted per class straight away
-- (the months come from int_prediction_cells); the joins below work on these counts
-- (models x classes, months x classes), not on rows.
model_class_counts as (
    select model_id, predicted_class_id, count(*) as n_items
    from {{ ref('stg_predictions') }}
    group by model_id, predicted_class_id
),

model_counts as (
    select
        m.project_id, m.model_id, m.version_number, c.class_id,
        coalesce(mc.n_items, 0) as n_items
    from models as m
    inner join classes as c on c.project_id = m.project_id
    left join model_class_counts as mc
        on mc.model_id = m.model_id and mc.predicted_class_id = c.class_id
),

model_shares as (
    select
        *,
        {{ ratio('n_items', 'sum(n_items) over (partition by model_id)') }} as share
    from model_counts
),

model_pairs as (
    {{ neighbour_pairs('model_version', 'model_shares', 'version_number',
                       dbt.safe_cast('b.model_id', dbt.type_string()), dbt.safe_cast('c.model_id', dbt.type_string())) }}
),

-- The latest model's predictions per project, capture month and class (one row each:
-- one latest model per project), summed from int_prediction_cells (the one pass over
-- them that the marts share).
latest_counts as (
    select
        project_id,
        model_id,
        predicted_class_id,
        captured_month,
        {{ sum_counts('items') }} as n_items
    from {{ ref('int_prediction_cells') }}
    where captured_month is not null
    group by project_id, model_id, predicted_class_id, captured_month
),

months as (
    select
        project_id,
        model_id,
        captured_month,
        dense_rank() over (partition by project_id order by captured_month) as month_number
    from (select distinct project_id, model_id, captured_month from latest_counts) as distinct_months
),

month_counts as (
    select
        mo.project_id, mo.model_id, mo.captured_month, mo.month_number, c.class_id,
        coalesce(lc.n_items, 0) as n_items
    from months as mo
    inner join classes as c on c.project_id = mo.project_id
    left join latest_counts as lc
        on lc.project_id = mo.project_id
        and lc.captured_month = mo.captured_month
        and lc.predicted_class_id = c.class_id
),

month_shares as (
    select
        *,
        {{ ratio('n_items', 'sum(n_items) over (partition by project_id, captured_month)') }} as share
    from month_counts
),

month_pairs as (
    {{ neighbour_pairs('captured_month', 'month_shares', 'month_number', 'b.captured_month', 'c.captured_month') }}
),

pairs as (
    select * from model_pairs
    union all
    select * from month_pairs
),

floored as (
    select
        *,
        case when coalesce(baseline_share, 0) < {{ eps }} then {{ eps }} else baseline_share end as b_share,
        case when coalesce(compared_share, 0) < {{ eps }} then {{ eps }} else compared_share end as c_share
    from pairs
),

scored as (
    select
        *,
        (c_share - b_share) * {{ ln('c_share / b_share') }} as psi
    from floored
)

select
    {{ grain_key(['s.comparison', 's.project_id', 's.baseline', 's.compared', 's.class_id']) }} as drift_key,
    s.comparison,
    s.project_id,
    s.baseline,
    s.compared,
    s.baseline_model_id,
    s.compared_model_id,
    s.class_id,
    c.class_name,
    s.baseline_items,
    s.compared_items,
    s.baseline_share,
    s.compared_share,
    s.psi,
    sum(s.psi) over (partition by s.comparison, s.project_id, s.baseline, s.compared) as psi_total
from scored as s
inner join classes as c on c.project_id = s.project_id and c.class_id = s.class_id
