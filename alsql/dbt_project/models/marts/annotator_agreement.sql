-- Agreement between annotators, one row per project x annotator pair x class pair.
-- An annotator's label of an item is their newest rater label (stg_annotator_labels:
-- source ui or import; reviews, gold labels and the simulated oracle are not raters).
-- For each pair (annotator_a sorts before annotator_b) over the items both labeled:
-- the confusion cell (items: annotator_a said class_id_a, annotator_b said class_id_b),
-- and, repeated on every row of the pair, Cohen's kappa. Krippendorff's alpha (nominal)
-- over every rater of the project is repeated on every row of the project. A pair with
-- no common item has one row with NULL classes, items 0 and kappa NULL.
with rated as (
    select project_id, item_id, annotator, class_id
    from {{ ref('stg_annotator_labels') }}
    where label_role = 'rater' and recency = 1
),

raters as (
    select project_id, annotator
    from rated
    group by project_id, annotator
),

pairs as (
    select a.project_id, a.annotator as annotator_a, b.annotator as annotator_b
    from raters as a
    inner join raters as b on b.project_id = a.project_id and a.annotator < b.annotator
),

cells as (
    select
        a.project_id,
        a.annotator as annotator_a,
        b.annotator as annotator_b,
        a.class_id as class_id_a,
        b.class_id as class_id_b,
        count(*) as items
    from rated as a
    inner join rated as b
        on b.project_id = a.project_id and b.item_id = a.item_id and a.annotator < b.annotator
    group by a.project_id, a.annotator, b.annotator, a.class_id, b.class_id
),

pair_totals as (
    select
        project_id,
        annotator_a,
        annotator_b,
        sum(items) as pair_items,
        sum(case when class_id_a = class_id_b then items else 0 end) as pair_agreed
    from cells
    group by project_id, annotator_a, annotator_b
),

margin_a as (
    select project_id, annotator_a, annotator_b, class_id_a as class_id, sum(items) as n_a
    from cells
    group by project_id, annotator_a, annotator_b, class_id_a
),

margin_b as (
    select project_id, annotator_a, annotator_b, class_id_b as class_id, sum(items) as n_b
    from cells
    group by project_id, annotator_a, annotator_b, class_id_b
),

-- Sum over classes of (a's count) x (b's count): n^2 times the chance agreement.
chance as (
    select
        ma.project_id,
        ma.annotator_a,
        ma.annotator_b,
        sum(cast(ma.n_a as {{ dbt.type_float() }}) * mb.n_b) as chance_products
    from margin_a as ma
    inner join margin_b as mb
        on mb.project_id = ma.project_id and mb.annotator_a = ma.annotator_a
        and mb.annotator_b = ma.annotator_b and mb.class_id = ma.class_id
    group by ma.project_id, ma.annotator_a, ma.annotator_b
),

-- kappa = (p_o - p_e) / (1 - p_e) = (n * agreed - S) / (n^2 - S), S = chance_products:
-- NULL when p_e = 1 (both gave one and the same class throughout) or n = 0.
kappas as (
    select
        t.project_id,
        t.annotator_a,
        t.annotator_b,
        t.pair_items,
        t.pair_agreed,
        (cast(t.pair_items as {{ dbt.type_float() }}) * t.pair_agreed - coalesce(c.chance_products, 0))
            / nullif(cast(t.pair_items as {{ dbt.type_float() }}) * t.pair_items - coalesce(c.chance_products, 0), 0)
            as kappa
    from pair_totals as t
    left join chance as c
        on c.project_id = t.project_id and c.annotator_a = t.annotator_a and c.annotator_b = t.annotator_b
),

-- Krippendorff's alpha (nominal) from the coincidence matrix: units are items with two
-- or more raters; m_uc raters gave class c to unit u, m_u = sum_c m_uc.
unit_classes as (
    select project_id, item_id, class_id, count(*) as m_uc
    from rated
    group by project_id, item_id, class_id
),

units as (
    select project_id, item_id, sum(m_uc) as m_u, sum(m_uc * m_uc) as m_uc_squares
    from unit_classes
    group by project_id, item_id
    having sum(m_uc) >= 2
),

class_totals as (
    select uc.project_id, uc.class_id, sum(uc.m_uc) as n_c
    from unit_classes as uc
    inner join units as u on u.project_id = uc.project_id and u.item_id = uc.item_id
    group by uc.project_id, uc.class_id
),

-- Observed disagreement: sum over c != k of o_ck = sum_u (m_u^2 - sum_c m_uc^2) / (m_u - 1).
observed as (
    select
        project_id,
        count(*) as alpha_items,
        sum(m_u) as alpha_values,
        sum(cast(m_u * m_u - m_uc_squares as {{ dbt.type_float() }}) / (m_u - 1)) as disagreement
    from units
    group by project_id
),

expected as (
    select project_id, sum(cast(n_c as {{ dbt.type_float() }}) * n_c) as n_c_squares
    from class_totals
    group by project_id
),

-- alpha = 1 - (n - 1) * observed / (n^2 - sum_c n_c^2): NULL when every value is one class.
alphas as (
    select
        o.project_id,
        o.alpha_items,
        o.alpha_values,
        1 - (o.alpha_values - 1) * o.disagreement
            / nullif(cast(o.alpha_values as {{ dbt.type_float() }}) * o.alpha_values - e.n_c_squares, 0)
            as alpha
    from observed as o
    inner join expected as e on e.project_id = o.project_id
),

project_raters as (
    select project_id, count(*) as project_annotators
    from raters
    group by project_id
)

select
    {{ grain_key(['p.project_id', 'p.annotator_a', 'p.annotator_b', 'c.class_id_a', 'c.class_id_b']) }}
        as agreement_key,
    p.project_id,
    p.annotator_a,
    p.annotator_b,
    c.class_id_a,
    ca.class_name as class_name_a,
    c.class_id_b,
    cb.class_name as class_name_b,
    coalesce(c.items, 0) as items,
    coalesce(k.pair_items, 0) as pair_items,
    coalesce(k.pair_agreed, 0) as pair_agreed,
    {{ ratio('k.pair_agreed', 'k.pair_items') }} as observed_agreement,
    k.kappa,
    r.project_annotators,
    coalesce(al.alpha_items, 0) as alpha_items,
    al.alpha
from pairs as p
inner join project_raters as r on r.project_id = p.project_id
left join cells as c
    on c.project_id = p.project_id and c.annotator_a = p.annotator_a and c.annotator_b = p.annotator_b
left join kappas as k
    on k.project_id = p.project_id and k.annotator_a = p.annotator_a and k.annotator_b = p.annotator_b
left join alphas as al on al.project_id = p.project_id
left join {{ ref('stg_classes') }} as ca on ca.project_id = c.project_id and ca.class_id = c.class_id_a
left join {{ ref('stg_classes') }} as cb on cb.project_id = c.project_id and cb.class_id = c.class_id_b
