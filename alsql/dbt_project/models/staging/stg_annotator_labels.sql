-- Every annotation with the role it plays in the quality marts, and its recency
-- within that role (1 = newest):
--   rater  : a person's own label, source ui or import with a named annotator; recency
--            counts per annotator, so recency 1 is that annotator's label of the item
--   gold   : the item's known label (source gold); recency 1 is its newest gold label
--   review : a reviewer's decision (source review)
--   other  : the simulated oracle (a simulation's ground truth, not a person) and
--            labels without an annotator; they never count as a rater
-- One window over annotations: both quality marts read this view.
with annotations as (
    select
        *,
        case
            when label_source in ('ui', 'import') and annotator is not null then 'rater'
            when label_source in ('gold', 'review') then label_source
            else 'other'
        end as label_role
    from {{ ref('stg_annotations') }}
)

select
    annotation_id,
    project_id,
    item_id,
    class_id,
    annotator,
    labeled_at,
    seconds_spent,
    label_source,
    label_role,
    row_number() over (
        partition by project_id, item_id, label_role,
            case when label_role = 'rater' then annotator end
        order by annotation_id desc
    ) as recency
from annotations
