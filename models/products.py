"""Products: an organization's fleets."""

from tortoise import fields
from tortoise.models import Model


class Product(Model):
    """A fleet of devices. Its numeric product ID is the primary key, drawn from the table's
    own sequence (identity on PostgreSQL, AUTOINCREMENT on SQLite), so it is never reused."""

    id = fields.BigIntField(primary_key=True)
    organization = fields.ForeignKeyField("models.Organization", related_name="products")
    name = fields.CharField(max_length=100)
    slug = fields.CharField(max_length=63, unique=True)
    description = fields.TextField(default="")
    platform = fields.CharField(max_length=40)
    customer_auth = fields.CharField(max_length=30)
    created_at = fields.DatetimeField()
    event_data_limit = fields.IntField(
        default=1024, db_default=1024, description="bytes of data an event may carry"
    )

    class Meta:
        table = "products"
        indexes = [("organization_id", "id")]
