"""Extensions, created unbound here and bound to an app in the factory."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


# `flask db upgrade|current|history|...` on lyftr/store/migrations (its directory is bound in the
# factory).
migrate = Migrate()
