-- One row per project x latest model x estimand x pair of groups (group_a < group_b) x
-- estimator: difference = estimate of group_a - estimate of group_b (as answer_estimates
-- has them), its confidence interval at var('answer_level') and the two-sided normal
-- p-value of "no difference" (docs/analysts.md, "How sure is the answer").
-- Groups by TRUE class (shared_units = 1) are estimated from the same units, so the two
-- estimates are correlated: the variance is that of the difference of the two groups'
-- linearized terms, unit by unit (the units' cross products below). Groups that split
-- the units (an observed attribute) are independent samples: the variances add.
-- Only estimands with at most var('answer_difference_max_groups') groups (20 unless
-- set) get pairs, so a group per entity does not make a row per pair of entities.
-- lam: 0 for classical, NULL for naive, and for ppi the smaller of the two groups' lam.
{%- set parts = ['a', 'ah', 'b', 'bh'] %}
{%- set predicted = ['ah', 'bh'] %}
{%- set max_groups = var('answer_difference_max_groups', 20) | int %}
with estimators as (
    select
        *,
        count(*) over (partition by project_id, model_id, estimand, estimator) as group_count
    from {{ ref('int_answer_estimators') }}
),

pairs as (
    select
        ea.project_id, ea.model_id, ea.mart, ea.estimand, ea.estimand_label, ea.shared_units,
        ea.grp as group_a, eb.grp as group_b, ea.estimator,
        ea.estimate - eb.estimate as difference,
        ea.std_error as se_a, eb.std_error as se_b,
        ea.n_labeled as n_labeled_a, eb.n_labeled as n_labeled_b,
        ea.n_unlabeled as n_unlabeled_a, eb.n_unlabeled as n_unlabeled_b,
        ea.lam as lam_a, eb.lam as lam_b,
        -- coefficients of each group's linearized term on (a, ah, b, bh), group b negated
        1.0 / ea.m_den as ka_a, -ea.lam_used / ea.m_den as ka_ah,
        -ea.r_lin / ea.m_den as ka_b, ea.lam_used * ea.r_lin / ea.m_den as ka_bh,
        -1.0 / eb.m_den as kb_a, eb.lam_used / eb.m_den as kb_ah,
        eb.r_lin / eb.m_den as kb_b, -eb.lam_used * eb.r_lin / eb.m_den as kb_bh,
        ea.s_one, ea.su_one, ea.t_one,
        cast(ea.n_labeled as {{ dbt.type_float() }}) as nl,
        cast(ea.n_unlabeled as {{ dbt.type_float() }}) as nu
        {%- for x in ['a', 'ah', 'b', 'bh'] %},
        ea.s_{{ x }} as sa_{{ x }}, eb.s_{{ x }} as sb_{{ x }}
        {%- endfor %}
        {%- for x in ['one', 'ah', 'bh'] %},
        ea.su_{{ x }} as sua_{{ x }}, eb.su_{{ x }} as sub_{{ x }},
        ea.t_{{ x }} as ta_{{ x }}, eb.t_{{ x }} as tb_{{ x }}
        {%- endfor %}
        {%- for x in parts %}{% for y in parts[loop.index0:] %},
        ea.q_{{ x }}_{{ y }} as qa_{{ x }}_{{ y }}, eb.q_{{ x }}_{{ y }} as qb_{{ x }}_{{ y }}
        {%- endfor %}{% endfor %}
        {%- for x in predicted %}{% for y in predicted[loop.index0:] %},
        ea.qu_{{ x }}_{{ y }} as qua_{{ x }}_{{ y }}, eb.qu_{{ x }}_{{ y }} as qub_{{ x }}_{{ y }},
        ea.tq_{{ x }}_{{ y }} as tqa_{{ x }}_{{ y }}, eb.tq_{{ x }}_{{ y }} as tqb_{{ x }}_{{ y }}
        {%- endfor %}{% endfor %}
    from estimators as ea
    inner join estimators as eb
        on eb.project_id = ea.project_id and eb.model_id = ea.model_id
        and eb.estimand = ea.estimand and eb.estimator = ea.estimator
        and ea.grp < eb.grp
    where ea.group_count <= {{ max_groups }}
),

-- sums over the units of group a's parts times group b's parts (groups by true class)
cross_products as (
    select
        ua.project_id, ua.model_id, ua.estimand, ua.grp as group_a, ub.grp as group_b
        {%- for x in parts %}{% for y in parts %},
        sum(case when ua.is_labeled = 1
            then ua.weight * ua.weight * ua.{{ _ppi_value(x) }} * ub.{{ _ppi_value(y) }} else 0.0 end) as x_{{ x }}_{{ y }}
        {%- endfor %}{% endfor %}
        {%- for x in predicted %}{% for y in predicted %},
        sum(case when ua.is_labeled = 1
            then 0.0 else ua.weight * ua.weight * ua.{{ _ppi_value(x) }} * ub.{{ _ppi_value(y) }} end) as xu_{{ x }}_{{ y }},
        sum(ua.{{ _ppi_value(x) }} * ub.{{ _ppi_value(y) }}) as xt_{{ x }}_{{ y }}
        {%- endfor %}{% endfor %}
    from {{ ref('int_answer_units') }} as ua
    inner join {{ ref('int_answer_units') }} as ub
        on ub.project_id = ua.project_id and ub.model_id = ua.model_id
        and ub.estimand = ua.estimand and ub.unit_id = ua.unit_id
        and ua.grp < ub.grp
    where ua.shared_units = 1
        and ua.estimand in (
            select estimand from estimators
            where shared_units = 1 and group_count <= {{ max_groups }}
        )
    group by ua.project_id, ua.model_id, ua.estimand, ua.grp, ub.grp
),

{#- group a's and group b's linearized terms, labeled / unlabeled / naive -#}
{%- set ka = {'a': 'ka_a', 'ah': 'ka_ah', 'b': 'ka_b', 'bh': 'ka_bh'} %}
{%- set kb = {'a': 'kb_a', 'ah': 'kb_ah', 'b': 'kb_b', 'bh': 'kb_bh'} %}
{%- set kua = {'ah': 'ka_ah * -1.0', 'bh': 'ka_bh * -1.0'} %}
{%- set kub = {'ah': 'kb_ah * -1.0', 'bh': 'kb_bh * -1.0'} %}
{%- set kna = {'ah': 'ka_a', 'bh': 'ka_b'} %}
{%- set knb = {'ah': 'kb_a', 'bh': 'kb_b'} %}
joint as (
    select
        p.*,
        case when p.estimator = 'naive' then
            ({{ ppi_bilinear(kna, kna, 'p.tqa') }} + {{ ppi_bilinear(knb, knb, 'p.tqb') }}
                + 2.0 * {{ ppi_bilinear(kna, knb, 'c.xt', false) }}) / p.t_one
            - (({{ ppi_linear(kna, 'p.ta') }} + {{ ppi_linear(knb, 'p.tb') }}) / p.t_one)
            * (({{ ppi_linear(kna, 'p.ta') }} + {{ ppi_linear(knb, 'p.tb') }}) / p.t_one)
        else
            p.nl * ({{ ppi_bilinear(ka, ka, 'p.qa') }} + {{ ppi_bilinear(kb, kb, 'p.qb') }}
                + 2.0 * {{ ppi_bilinear(ka, kb, 'c.x', false) }}) / (p.s_one * p.s_one)
            - (({{ ppi_linear(ka, 'p.sa') }} + {{ ppi_linear(kb, 'p.sb') }}) / p.s_one)
            * (({{ ppi_linear(ka, 'p.sa') }} + {{ ppi_linear(kb, 'p.sb') }}) / p.s_one)
        end as var_labeled,
        case when p.estimator = 'ppi' then
            p.nu * ({{ ppi_bilinear(kua, kua, 'p.qua') }} + {{ ppi_bilinear(kub, kub, 'p.qub') }}
                + 2.0 * {{ ppi_bilinear(kua, kub, 'c.xu', false) }}) / (p.su_one * p.su_one)
            - (({{ ppi_linear(kua, 'p.sua') }} + {{ ppi_linear(kub, 'p.sub') }}) / p.su_one)
            * (({{ ppi_linear(kua, 'p.sua') }} + {{ ppi_linear(kub, 'p.sub') }}) / p.su_one)
        else 0.0 end as var_unlabeled
    from pairs as p
    inner join cross_products as c
        on c.project_id = p.project_id and c.model_id = p.model_id and c.estimand = p.estimand
        and c.group_a = p.group_a and c.group_b = p.group_b
    where p.shared_units = 1
),

combined as (
    select
        project_id, model_id, mart, estimand, estimand_label, group_a, group_b, estimator,
        difference,
        case when estimator = 'naive'
            then sqrt({{ nonnegative('var_labeled') }} / t_one)
            else sqrt({{ nonnegative('var_labeled') }} / nl
                + case when estimator = 'ppi' then {{ nonnegative('var_unlabeled') }} / nu else 0.0 end)
        end as std_error,
        n_labeled_a as n_labeled, n_unlabeled_a as n_unlabeled, lam_a, lam_b
    from joint
    union all
    select
        project_id, model_id, mart, estimand, estimand_label, group_a, group_b, estimator,
        difference,
        sqrt(se_a * se_a + se_b * se_b),
        n_labeled_a + n_labeled_b, n_unlabeled_a + n_unlabeled_b, lam_a, lam_b
    from pairs
    where shared_units = 0
),

quantile as (
    {{ answer_quantile_query() }}
),

tested as (
    select c.*, q.z, c.difference / nullif(c.std_error, 0) as z_stat
    from combined as c
    cross join quantile as q
)

select
    t.project_id,
    p.project_name,
    t.model_id,
    t.mart,
    t.estimand,
    t.estimand_label,
    t.group_a,
    t.group_b,
    t.estimator,
    t.difference,
    t.difference - t.z * t.std_error as ci_low,
    t.difference + t.z * t.std_error as ci_high,
    t.std_error,
    case
        -- no difference and no variance beyond rounding (e.g. both groups all correct): not a
        -- finding, whatever the ratio of two rounding errors says
        when abs(t.difference) < 1e-9 and coalesce(t.std_error, 0) < 1e-7 then 1.0
        when t.z_stat is not null then {{ normal_two_sided_p('t.z_stat') }}
        when t.difference = 0 then 1.0
        else 0.0
    end as p_value,
    cast({{ answer_level() }} as {{ dbt.type_float() }}) as level,
    t.n_labeled,
    t.n_unlabeled,
    case when t.lam_a < t.lam_b then t.lam_a else t.lam_b end as lam
from tested as t
inner join {{ ref('stg_projects') }} as p on p.project_id = t.project_id
