-- Labels per project, day, round and class. A label belongs to the round that
-- picked its item (the latest such round of the project); labels given outside any
-- round have a NULL round_id.
with annotations as (
    select * from {{ ref('stg_annotations') }}
),

item_rounds as (
    select r.project_id, ri.item_id, max(r.round_id) as round_id
    from {{ ref('stg_round_items') }} as ri
    inner join {{ ref('stg_rounds') }} as r on r.round_id = ri.round_id
    where ri.round_item_status = 'labeled'
    group by r.project_id, ri.item_id
),

attributed as (
    select
        a.project_id,
        {{ to_day('a.labeled_at') }} as label_date,
        ir.round_id,
        a.class_id,
        a.item_id,
        a.label_source,
        a.seconds_spent
    from annotations as a
    left join item_rounds as ir
        on ir.project_id = a.project_id and ir.item_id = a.item_id
),

counted as (
    select
        project_id,
        label_date,
        round_id,
        class_id,
        count(*) as labels,
        count(distinct item_id) as items_labeled,
        sum(case when label_source <> 'oracle' then 1 else 0 end) as human_labels,
        sum(seconds_spent) as seconds_spent
    from attributed
    group by project_id, label_date, round_id, class_id
)

select
    {{ grain_key(['c.project_id', 'c.label_date', 'c.round_id', 'c.class_id']) }} as progress_key,
    c.project_id,
    c.label_date,
    c.round_id,
    r.purpose as round_purpose,
    r.strategy as round_strategy,
    c.class_id,
    cls.class_name,
    c.labels,
    c.items_labeled,
    c.human_labels,
    c.seconds_spent,
    sum(c.labels) over (
        partition by c.project_id, c.class_id
        order by c.label_date, c.round_id
        rows between unbounded preceding and current row
    ) as cumulative_labels
from counted as c
left join {{ ref('stg_rounds') }} as r on r.round_id = c.round_id
left join {{ ref('stg_classes') }} as cls
    on cls.project_id = c.project_id and cls.class_id = c.class_id
