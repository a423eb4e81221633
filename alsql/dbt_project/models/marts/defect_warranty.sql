-- One row per project x product serial (the items' entity): is any image of the
-- product predicted defective by the latest model (a class outside
-- var('normal_classes')), and the warranty claims filed for that serial.
-- Only projects whose serials appear in the claims are kept.
-- The latest model's predictions per serial, summed from int_prediction_cells (the one
-- pass over the predictions that the marts share; its cells hold each predicted class
-- of an entity with the item count and the top confidence), not from item_index's rows.
with cells as (
    select
        c.project_id,
        c.entity,
        c.items,
        c.max_confidence,
        1 - {{ is_normal_class('cls.class_name') }} as is_defect
    from {{ ref('int_prediction_cells') }} as c
    left join {{ ref('stg_classes') }} as cls
        on cls.project_id = c.project_id and cls.class_id = c.predicted_class_id
    where c.entity is not null
),

products as (
    select
        project_id,
        entity,
        {{ sum_counts('items') }} as images,
        {{ sum_counts('case when is_defect = 1 then items else 0 end') }} as defect_images,
        max(is_defect) as is_predicted_defective,
        max(case when is_defect = 1 then max_confidence end) as defect_confidence
    from cells
    group by project_id, entity
),

claims as (
    select
        entity,
        count(*) as claims,
        sum(cost_usd) as claim_cost_usd,
        min(claimed_at) as first_claim_at
    from {{ ref('stg_warranty_claims') }}
    group by entity
),

product_projects as (
    select distinct p.project_id
    from products as p
    inner join claims as c on c.entity = p.entity
    where {{ business_projects('warranty_claims', 'p.project_id') }}
)

select
    {{ grain_key(['p.project_id', 'p.entity']) }} as product_key,
    p.project_id,
    p.entity as serial,
    p.images,
    p.defect_images,
    p.is_predicted_defective,
    p.defect_confidence,
    coalesce(c.claims, 0) as claims,
    coalesce(c.claim_cost_usd, 0) as claim_cost_usd,
    c.first_claim_at,
    case when c.entity is null then 0 else 1 end as has_claim
from products as p
inner join product_projects as pp on pp.project_id = p.project_id
left join claims as c on c.entity = p.entity
