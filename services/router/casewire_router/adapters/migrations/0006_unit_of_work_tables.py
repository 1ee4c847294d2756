"""The tables of the shared idempotent consumer (`casewire_common.unit_of_work`).

On a database of an earlier release the router's `processed_messages` markers become
`processed_inputs`, kept, so a message delivered again after the upgrade still changes nothing;
a view under the old name lets that release's pods go on writing markers until the rollout
replaces them (a later release drops it).
"""

from casewire_common.unit_of_work import tables_ddl


def sql(schema: str) -> str:
    return f"""
DO $$ BEGIN
    IF to_regclass('"{schema}".processed_messages') IS NOT NULL THEN
        ALTER TABLE "{schema}".processed_messages RENAME TO processed_inputs;
        ALTER INDEX "{schema}".processed_messages_pkey RENAME TO processed_inputs_pkey;
        CREATE VIEW "{schema}".processed_messages AS
            SELECT key, processed_at FROM "{schema}".processed_inputs;
    END IF;
END $$;
{tables_ddl(schema)}"""
