-- item_index has exactly one row per project x item: no pair twice, none missing.
-- One pass over the mart, no sort: every row's pair must be a project x item (a probe
-- of each key) and its project_item_key must be '<project_id>-<item_id>', and the mart
-- must hold as many rows as there are projects x items. With the key's `unique` test
-- (item_index.yml) the pairs are distinct, so these rows are every pair exactly once.
-- Also covers not_null and relationships of project_id, item_id and project_item_key.
with checked as (
    select
        count(*) as n_rows,
        sum(case
            when p.project_id is null or i.item_id is null then 1
            when r.project_item_key = {{ grain_key(['r.project_id', 'r.item_id']) }} then 0
            else 1
        end) as bad_rows
    from {{ ref('item_index') }} as r
    left join {{ ref('stg_projects') }} as p on p.project_id = r.project_id
    left join {{ ref('stg_items') }} as i on i.item_id = r.item_id
),

expected as (
    select
        cast((select count(*) from {{ ref('stg_projects') }}) as {{ dbt.type_bigint() }})
        * (select count(*) from {{ ref('stg_items') }}) as n_pairs
)

select c.n_rows, e.n_pairs, c.bad_rows
from checked as c
cross join expected as e
where c.n_rows <> e.n_pairs or c.bad_rows > 0
