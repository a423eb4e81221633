-- One row per project x basis x class: the product serials (the items' entity) with an
-- image of that class, and their warranty claims. Basis 'predicted': the class the
-- latest model predicts for the image (from int_prediction_cells); 'label': the image's
-- label of record. A serial whose images show several classes counts in each of them.
-- Every class of the project has its two rows (zeros where no image is of it), so
-- "which defect leads to claims?" is answered class by class, not only defective or
-- not (defect_warranty). The projects are defect_warranty's: those whose serials appear
-- in the claims (the table var warranty_claims_table names, else the demo seed).
with projects as (
    select distinct project_id from {{ ref('defect_warranty') }}
),

claims as (
    select entity, count(*) as claims, sum(cost_usd) as claim_cost_usd
    from {{ ref('stg_warranty_claims') }}
    group by entity
),

images as (
    select c.project_id, cast('predicted' as {{ dbt.type_string() }}) as basis,
        c.predicted_class_id as class_id, c.entity, c.items as images
    from {{ ref('int_prediction_cells') }} as c
    inner join projects as p on p.project_id = c.project_id
    where c.entity is not null
    union all
    select l.project_id, cast('label' as {{ dbt.type_string() }}), l.class_id, i.entity, 1
    from {{ ref('stg_current_labels') }} as l
    inner join projects as p on p.project_id = l.project_id
    inner join {{ ref('stg_items') }} as i on i.item_id = l.item_id
    where i.entity is not null
),

serials as (
    select project_id, basis, class_id, entity, {{ sum_counts('images') }} as images
    from images
    group by project_id, basis, class_id, entity
),

counted as (
    select
        s.project_id, s.basis, s.class_id,
        count(*) as serials,
        {{ sum_counts('s.images') }} as images,
        sum(case when c.entity is null then 0 else 1 end) as serials_with_claim,
        sum(coalesce(c.claims, 0)) as claims,
        sum(coalesce(c.claim_cost_usd, 0)) as claim_cost_usd
    from serials as s
    left join claims as c on c.entity = s.entity
    group by s.project_id, s.basis, s.class_id
),

bases as (
    select cast('predicted' as {{ dbt.type_string() }}) as basis
    union all
    select cast('label' as {{ dbt.type_string() }})
)

select
    {{ grain_key(['p.project_id', 'b.basis', 'cls.class_id']) }} as class_basis_key,
    p.project_id,
    b.basis,
    cls.class_id,
    cls.class_name,
    {{ is_normal_class('cls.class_name') }} as is_normal_class,
    coalesce(c.serials, 0) as serials,
    coalesce(c.images, 0) as images,
    coalesce(c.serials_with_claim, 0) as serials_with_claim,
    {{ ratio('c.serials_with_claim', 'c.serials') }} as claim_rate,
    coalesce(c.claims, 0) as claims,
    {{ ratio('c.claims', 'c.serials') }} as claims_per_serial,
    coalesce(c.claim_cost_usd, 0) as claim_cost_usd
from projects as p
cross join bases as b
inner join {{ ref('stg_classes') }} as cls on cls.project_id = p.project_id
left join counted as c
    on c.project_id = p.project_id and c.basis = b.basis and c.class_id = cls.class_id
