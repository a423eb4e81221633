-- Each annotator's work per project and day (period 'day'), and all time (period
-- 'all_time', label_date NULL). Raters as in stg_annotator_labels: source ui or import
-- with an annotator; reviews, gold labels and the simulated oracle are not counted.
--   labels            every rater label given (a correction counts again)
--   median_seconds    median seconds per label over the labels with a recorded time
--   answers           items whose label by the annotator (their newest) was given then
--   gold_*            those answers on items with a gold label, and how many match it
--   record_*          those answers on items someone else also labeled (another
--                     annotator, a reviewer, a gold label, the oracle or an unnamed
--                     import), and how many match the label of record (current_labels)
--   last_annotation_id the newest of the labels (what "labels since the build" counts from)
with labels as (
    select
        *,
        {{ to_day('labeled_at') }} as label_date
    from {{ ref('stg_annotator_labels') }}
),

rater_labels as (
    select project_id, item_id, annotation_id, annotator, class_id, seconds_spent, label_date, recency
    from labels
    where label_role = 'rater'
),

-- Per item: how many annotators labeled it, its gold class, whether a reviewer decided,
-- whether any other label (the oracle's, an unnamed import) weighs in its label of record.
item_facts as (
    select
        project_id,
        item_id,
        sum(case when label_role = 'rater' then 1 else 0 end) as raters,
        max(case when label_role = 'gold' then class_id end) as gold_class_id,
        max(case when label_role = 'review' then 1 else 0 end) as reviewed,
        max(case when label_role = 'other' then 1 else 0 end) as other_labels
    from labels
    where recency = 1
    group by project_id, item_id
),

-- The label of record, read once: its view decides item by item with correlated
-- subqueries, so it is materialized where the dialect can be told to (planned on its
-- own, never re-run for every row of the join below).
records as {{ 'materialized' if target.type in ('postgres', 'sqlite') }} (
    select project_id, item_id, class_id
    from {{ ref('stg_current_labels') }}
),

answers as (
    select
        r.project_id,
        r.annotator,
        r.label_date,
        case when f.gold_class_id is not null then 1 else 0 end as on_gold,
        case when r.class_id = f.gold_class_id then 1 else 0 end as gold_correct,
        case
            when f.raters > 1 or f.gold_class_id is not null or f.reviewed = 1 or f.other_labels = 1 then 1
            else 0
        end as shared,
        case when r.class_id = cl.class_id then 1 else 0 end as matches_record
    from rater_labels as r
    inner join item_facts as f on f.project_id = r.project_id and f.item_id = r.item_id
    left join records as cl
        on cl.project_id = r.project_id and cl.item_id = r.item_id
    where r.recency = 1
),

given_days as (
    select
        project_id,
        annotator,
        label_date,
        count(*) as labels,
        count(seconds_spent) as timed_labels,
        sum(seconds_spent) as seconds_spent,
        max(annotation_id) as last_annotation_id
    from rater_labels
    group by project_id, annotator, label_date
),

given_all as (
    -- A whole number on every backend (a sum of counts is numeric on PostgreSQL).
    select project_id, annotator, cast(sum(timed_labels) as {{ dbt.type_bigint() }}) as timed_labels
    from given_days
    group by project_id, annotator
),

-- Every timed label ranked by its seconds within its day and within all time (two sorts);
-- the median is the middle one, or the mean of the middle two.
timed as (
    select
        project_id,
        annotator,
        label_date,
        seconds_spent,
        row_number() over (partition by project_id, annotator, label_date order by seconds_spent) as day_rank,
        row_number() over (partition by project_id, annotator order by seconds_spent) as all_rank
    from rater_labels
    where seconds_spent is not null
),

median_days as (
    select t.project_id, t.annotator, t.label_date, avg(t.seconds_spent) as median_seconds
    from timed as t
    inner join given_days as g
        on g.project_id = t.project_id and g.annotator = t.annotator and g.label_date = t.label_date
    where t.day_rank in ((g.timed_labels + 1) / 2, (g.timed_labels + 2) / 2)
    group by t.project_id, t.annotator, t.label_date
),

median_all as (
    select t.project_id, t.annotator, avg(t.seconds_spent) as median_seconds
    from timed as t
    inner join given_all as g on g.project_id = t.project_id and g.annotator = t.annotator
    where t.all_rank in ((g.timed_labels + 1) / 2, (g.timed_labels + 2) / 2)
    group by t.project_id, t.annotator
),

answer_days as (
    select
        project_id,
        annotator,
        label_date,
        count(*) as answers,
        sum(on_gold) as gold_answers,
        sum(case when on_gold = 1 then gold_correct else 0 end) as gold_correct,
        sum(shared) as record_answers,
        sum(case when shared = 1 then matches_record else 0 end) as record_agreed
    from answers
    group by project_id, annotator, label_date
),

days as (
    select
        g.project_id,
        g.annotator,
        'day' as period,
        g.label_date,
        g.labels,
        g.timed_labels,
        g.seconds_spent,
        m.median_seconds,
        coalesce(a.answers, 0) as answers,
        coalesce(a.gold_answers, 0) as gold_answers,
        coalesce(a.gold_correct, 0) as gold_correct,
        coalesce(a.record_answers, 0) as record_answers,
        coalesce(a.record_agreed, 0) as record_agreed,
        g.last_annotation_id
    from given_days as g
    left join median_days as m
        on m.project_id = g.project_id and m.annotator = g.annotator and m.label_date = g.label_date
    left join answer_days as a
        on a.project_id = g.project_id and a.annotator = g.annotator and a.label_date = g.label_date
),

all_time as (
    select
        d.project_id,
        d.annotator,
        'all_time' as period,
        cast(null as date) as label_date,
        sum(d.labels) as labels,
        sum(d.timed_labels) as timed_labels,
        sum(d.seconds_spent) as seconds_spent,
        max(m.median_seconds) as median_seconds,
        sum(d.answers) as answers,
        sum(d.gold_answers) as gold_answers,
        sum(d.gold_correct) as gold_correct,
        sum(d.record_answers) as record_answers,
        sum(d.record_agreed) as record_agreed,
        max(d.last_annotation_id) as last_annotation_id
    from days as d
    left join median_all as m on m.project_id = d.project_id and m.annotator = d.annotator
    group by d.project_id, d.annotator
),

periods as (
    select * from days
    union all
    select * from all_time
)

select
    {{ grain_key(['project_id', 'annotator', 'period', 'label_date']) }} as performance_key,
    project_id,
    annotator,
    period,
    label_date,
    labels,
    timed_labels,
    seconds_spent,
    median_seconds,
    answers,
    gold_answers,
    gold_correct,
    {{ ratio('gold_correct', 'gold_answers') }} as gold_accuracy,
    record_answers,
    record_agreed,
    {{ ratio('record_agreed', 'record_answers') }} as record_agreement,
    last_annotation_id
from periods
