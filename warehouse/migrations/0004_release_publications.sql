-- Each upload of a release to the Hub is appended here; `releases` and `release_items` rows are never
-- updated or deleted (their hub_repo / hub_revision columns stay NULL from this version on).
CREATE TABLE release_publications (
    release_id   VARCHAR NOT NULL,
    hub_repo     VARCHAR NOT NULL,
    hub_revision VARCHAR NOT NULL,
    tag          VARCHAR NOT NULL,
    published_at TIMESTAMP NOT NULL,
    PRIMARY KEY (release_id, hub_repo)
);

INSERT INTO release_publications
SELECT release_id, hub_repo, hub_revision, name, created_at FROM releases WHERE hub_revision IS NOT NULL;
