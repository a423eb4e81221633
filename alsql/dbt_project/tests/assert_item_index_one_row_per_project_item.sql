-- item_index has exactly one row per project x item: no pair twice, none missing.
-- One pass: the mart's rows and the expected pairs are counted together per pair
-- (no join of two full-size sets); a pair fails when it is not in the mart exactly
-- once or is not an expected pair.
with tagged as (
    select project_id, item_id, 1 as in_index, 0 as expected
    from {{ ref('item_index') }}
    union all
    select p.project_id, i.item_id, 0 as in_index, 1 as expected
    from {{ ref('stg_projects') }} as p
    cross join {{ ref('stg_items') }} as i
)

select project_id, item_id, sum(in_index) as n_rows
from tagged
group by project_id, item_id
having sum(in_index) <> 1 or sum(expected) <> 1
