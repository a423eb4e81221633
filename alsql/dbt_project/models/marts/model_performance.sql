-- One row per model version x class: the model's accuracy on its project's
-- evaluation set (the same on every row of a model) and the class's precision and
-- recall there. Evaluation items the model did not predict are left out.
-- The figures weight each evaluation item by its weight (stg_evaluation_set.weight:
-- 1 for random evaluation rounds, the inverse-probability weight for active ones), so
-- they estimate the pool's figures; the counts (eval_items, correct, support,
-- predicted, true_positives) stay counts of items. With every weight 1 the figures
-- are the plain ratios of the counts.
with models as (
    select
        *,
        row_number() over (partition by project_id order by created_at, model_id) as version_number
    from {{ ref('stg_model_versions') }}
    -- encoders from `alsql pretrain` are not classifiers: no version number, no rows
    where model_status <> 'encoder'
),

classes as (
    select * from {{ ref('stg_classes') }}
),

evaluated as (
    select m.model_id, e.item_id, e.true_class_id, p.predicted_class_id, e.weight
    from models as m
    inner join {{ ref('stg_evaluation_set') }} as e on e.project_id = m.project_id
    inner join {{ ref('stg_predictions') }} as p
        on p.model_id = m.model_id and p.item_id = e.item_id
),

overall as (
    select
        model_id,
        count(*) as eval_items,
        sum(case when true_class_id = predicted_class_id then 1 else 0 end) as correct,
        sum(weight) as eval_weight,
        sum(case when true_class_id = predicted_class_id then weight else 0 end) as correct_weight
    from evaluated
    group by model_id
),

per_class as (
    select
        m.model_id,
        c.class_id,
        sum(case when ev.true_class_id = c.class_id then 1 else 0 end) as support,
        sum(case when ev.predicted_class_id = c.class_id then 1 else 0 end) as predicted,
        sum(case when ev.true_class_id = c.class_id and ev.predicted_class_id = c.class_id then 1 else 0 end)
            as true_positives,
        sum(case when ev.true_class_id = c.class_id then ev.weight else 0 end) as support_weight,
        sum(case when ev.predicted_class_id = c.class_id then ev.weight else 0 end) as predicted_weight,
        sum(case when ev.true_class_id = c.class_id and ev.predicted_class_id = c.class_id then ev.weight else 0 end)
            as true_positive_weight
    from models as m
    inner join classes as c on c.project_id = m.project_id
    left join evaluated as ev on ev.model_id = m.model_id
    group by m.model_id, c.class_id
),

-- balanced accuracy: the mean recall over the classes with evaluation items; macro-F1: the
-- mean F1 over the classes evaluated or predicted (as scikit-learn's); weighted as above
balance as (
    select
        model_id,
        avg(case when support_weight > 0 then {{ ratio('true_positive_weight', 'support_weight') }} end)
            as balanced_accuracy,
        avg(case when support_weight + predicted_weight > 0
            then {{ ratio('2 * true_positive_weight', 'support_weight + predicted_weight') }} end) as macro_f1
    from per_class
    group by model_id
)

select
    {{ grain_key(['m.model_id', 'pc.class_id']) }} as model_class_key,
    m.model_id,
    m.project_id,
    m.version_number,
    m.model_name,
    m.architecture,
    m.label_count,
    m.created_at,
    pc.class_id,
    c.class_name,
    coalesce(o.eval_items, 0) as eval_items,
    coalesce(o.correct, 0) as correct,
    o.eval_weight,
    {{ ratio('o.correct_weight', 'o.eval_weight') }} as accuracy,
    b.balanced_accuracy,
    b.macro_f1,
    pc.support,
    pc.predicted,
    pc.true_positives,
    {{ ratio('pc.true_positive_weight', 'pc.predicted_weight') }} as class_precision,
    {{ ratio('pc.true_positive_weight', 'pc.support_weight') }} as class_recall
from per_class as pc
inner join models as m on m.model_id = pc.model_id
inner join classes as c on c.project_id = m.project_id and c.class_id = pc.class_id
left join overall as o on o.model_id = pc.model_id
left join balance as b on b.model_id = pc.model_id
