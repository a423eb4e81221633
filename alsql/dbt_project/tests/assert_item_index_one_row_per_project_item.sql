-- item_index has exactly one row per project x item: no pair twice, none missing.
with expected as (
    select p.project_id, i.item_id
    from {{ ref('stg_projects') }} as p
    cross join {{ ref('stg_items') }} as i
),

counted as (
    select project_id, item_id, count(*) as n_rows
    from {{ ref('item_index') }}
    group by project_id, item_id
)

select e.project_id, e.item_id, coalesce(c.n_rows, 0) as n_rows
from expected as e
left join counted as c
    on c.project_id = e.project_id and c.item_id = e.item_id
where coalesce(c.n_rows, 0) <> 1

union all

select c.project_id, c.item_id, c.n_rows
from counted as c
left join expected as e
    on e.project_id = c.project_id and e.item_id = c.item_id
where e.item_id is null
