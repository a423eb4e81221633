-- One row per project x predicted intersection type (a class of the project):
-- traffic cameras (items' entity = the accident record's camera) whose items (images
-- or video segments) the latest model calls mostly that type, and the accidents
-- recorded at them. A camera's type is the class predicted most often over its items
-- (ties: the lower class id). Only projects whose cameras appear in the accident
-- records are kept. The records: the user's table named by var('gis_accidents_table'),
-- else the demo seed (see stg_gis_accidents), which joins only the projects of
-- var('demo_projects') (macro business_projects).
-- The latest model's predictions per camera and class, summed from int_prediction_cells
-- (the one pass over the predictions that the marts share), not from item_index's rows.
with predicted as (
    select project_id, entity, predicted_class_id, {{ sum_counts('items') }} as images
    from {{ ref('int_prediction_cells') }}
    where entity is not null
    group by project_id, entity, predicted_class_id
),

ranked as (
    select
        *,
        sum(images) over (partition by project_id, entity) as camera_images,
        row_number() over (partition by project_id, entity order by images desc, predicted_class_id) as vote
    from predicted
),

cameras as (
    select project_id, entity, predicted_class_id, camera_images, images as agreeing_images
    from ranked
    where vote = 1
),

accidents as (
    select
        entity,
        count(*) as accidents,
        sum(injuries) as injuries,
        sum(case when severity = 'fatal' then 1 else 0 end) as fatal_accidents
    from {{ ref('stg_gis_accidents') }}
    group by entity
),

camera_accidents as (
    select
        c.project_id,
        c.predicted_class_id,
        c.entity,
        c.camera_images,
        c.agreeing_images,
        coalesce(a.accidents, 0) as accidents,
        coalesce(a.injuries, 0) as injuries,
        coalesce(a.fatal_accidents, 0) as fatal_accidents
    from cameras as c
    left join accidents as a on a.entity = c.entity
),

traffic_projects as (
    select distinct c.project_id
    from cameras as c
    inner join accidents as a on a.entity = c.entity
    where {{ business_projects('gis_accidents', 'c.project_id') }}
),

per_type as (
    select
        cls.project_id,
        cls.class_id,
        count(ca.entity) as cameras,
        coalesce(sum(ca.camera_images), 0) as images,
        coalesce(sum(ca.accidents), 0) as accidents,
        coalesce(sum(ca.injuries), 0) as injuries,
        coalesce(sum(ca.fatal_accidents), 0) as fatal_accidents
    from {{ ref('stg_classes') }} as cls
    inner join traffic_projects as tp on tp.project_id = cls.project_id
    left join camera_accidents as ca
        on ca.project_id = cls.project_id and ca.predicted_class_id = cls.class_id
    group by cls.project_id, cls.class_id
)

select
    {{ grain_key(['pt.project_id', 'pt.class_id']) }} as intersection_key,
    pt.project_id,
    pt.class_id as intersection_class_id,
    cls.class_name as intersection_type,
    pt.cameras,
    pt.images,
    pt.accidents,
    pt.injuries,
    pt.fatal_accidents,
    {{ ratio('pt.accidents', 'pt.cameras') }} as accidents_per_camera
from per_type as pt
inner join {{ ref('stg_classes') }} as cls
    on cls.project_id = pt.project_id and cls.class_id = pt.class_id
